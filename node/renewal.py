"""A node's credentials on disk, and renewing them while the node runs.

Layout of ``NODE_DIR/credentials`` (keys encrypted with the node passphrase, 0600)::

    tls.key tls.crt sign.key sign.crt enc.key enc.crt root.crt   the current set: what the node
                                                                   presents, signs and decrypts with
    previous/STAMP/  enc.key enc.crt sign.crt tls.crt overlap.json
                     a set replaced by a renewal, kept until its overlap ends (overlap.json: "until")
    incoming/        a renewal being installed (only between the steps of install_renewal)

A renewal (:func:`install_renewal`, ``gwx node renew``) checks the new set — each key matches its
certificate, each certificate names this node and is valid now for its role under the node's
root — keeps the current certificates and the current *encryption key* under ``previous/``, puts
the new set in place, and tells the running node (SIGHUP), which adopts it without a restart
(:mod:`node.credential_reload`). The previous signing and TLS keys are destroyed at once: nothing
needs them again, and peers accept the previous certificates anyway while they are valid (any
certificate of our CA naming the node is the node's). The previous encryption key is kept because
peers that still cache the previous encryption certificate seal envelopes for it; it is destroyed
when the overlap ends — the earlier of the previous encryption certificate's expiry and the
overlap asked for (:data:`DEFAULT_OVERLAP`) — by the running node or at its next start.

What a renewal installs is a :class:`CredentialSet` — keys and certificates in memory — so the
same step takes credentials issued by the CA (``gwx pki issue-node --renew``, read by
:func:`read_credential_set`) or certificates that came back for the node's own request.

Crash safety: the new set is written whole under ``incoming/`` first, the previous set next, then
``incoming/ready`` marks it complete and its files are moved into place one by one.
:func:`finish_pending` (run before every load) completes a marked ``incoming/`` and discards an
unmarked one, so a crash at any step leaves one consistent current set. A renewal and a node's load
both hold :func:`credentials_lock` (``credentials/.lock``), so a load never sees a renewal midway.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import json
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from exchange_protocol.envelope import format_time
from exchange_protocol.envelope_crypto import DecryptionKey
from node.errors import ConfigError
from node.run_lock import holder
from pki.algorithms import PrivateKey
from pki.certificates import load_certificate, load_certificates, node_id_of, pem
from pki.errors import ErrorKind, GwxError
from pki.keystore import fsync_dir, read_private_key, write_private_key, write_public_file, write_secret_file
from pki.trust import Purpose, TrustStore, verify_certificate
from pki.x509_sm2 import public_key_of

log = logging.getLogger("gwx.node")

ROLES = ("tls", "sign", "enc")
PURPOSES = {"tls": (Purpose.TLS_SERVER, Purpose.TLS_CLIENT), "sign": (Purpose.SIGNING,),
            "enc": (Purpose.ENCRYPTION,)}
PREVIOUS = "previous"
INCOMING = "incoming"
READY = "ready"
OVERLAP_FILE = "overlap.json"
LOCK_FILE = ".lock"
# Long enough for every peer to fetch the new certificates (they re-fetch hourly and at once on
# ENV_NO_RECIPIENT_INFO) and for envelopes already sealed for the old one to arrive (the default
# retry window is two days).
DEFAULT_OVERLAP = dt.timedelta(days=7)


class RenewalRefused(ConfigError):
    """New credentials that this node cannot use: a key that is not its certificate's, a certificate
    for another node, one not valid now for its role under the node's root, or the set already in use."""

    code = "NODE_RENEWAL_REFUSED"
    kind = ErrorKind.INVALID_INPUT


@dataclass(frozen=True)
class CredentialSet:
    """A node's TLS, signing and encryption keys with their certificates (leaf, then intermediates)."""

    keys: dict[str, PrivateKey]
    chains: dict[str, list[x509.Certificate]]

    def leaf(self, role: str) -> x509.Certificate:
        return self.chains[role][0]


@dataclass(frozen=True)
class PreviousSet:
    """Certificates a renewal replaced, and the encryption key kept until ``until``."""

    path: Path
    until: dt.datetime
    certificates: dict[str, x509.Certificate]  # role → leaf

    def decryption_key(self, passphrase: bytes) -> DecryptionKey:
        return DecryptionKey(read_private_key(self.path / "enc.key", passphrase), self.certificates["enc"])


def read_credential_set(directory: Path, passphrase: bytes) -> CredentialSet:
    """The ``{tls,sign,enc}.{key,crt}`` files in ``directory`` (what ``gwx pki issue-node --out`` writes)."""
    directory = Path(directory)
    keys, chains = {}, {}
    for role in ROLES:
        crt = directory / f"{role}.crt"
        try:
            chains[role] = load_certificates(crt.read_bytes())
        except FileNotFoundError:
            hint = (f" (a node directory: its set is in {directory / 'credentials'}, give that as --from)"
                    if (directory / "credentials" / crt.name).exists() else "")
            raise RenewalRefused(f"{directory} holds no {role}.crt: a renewal needs tls, sign and enc "
                                 f"keys with their certificates{hint}", path=str(crt)) from None
        if not chains[role]:
            raise RenewalRefused(f"{crt} holds no certificate", path=str(crt))
        keys[role] = read_private_key(directory / f"{role}.key", passphrase)
    return CredentialSet(keys, chains)


def check_credential_set(new: CredentialSet, node_id: str, trust: TrustStore, now: dt.datetime,
                         host: str | None = None) -> None:
    """Refuse (:class:`RenewalRefused`) a set this node could not present, sign or decrypt with;
    ``host``: the name peers reach the node by (its public URL's), which the TLS certificate must carry."""
    if host is not None and not _names_host(new.leaf("tls"), host):
        raise RenewalRefused(f"tls.crt does not name {host}, where peers reach this node (node.toml "
                             "peer_api.public_url): issue it with --host " + host, host=host)
    for role in ROLES:
        leaf = new.leaf(role)
        if public_key_of(leaf) != new.keys[role].public_key():  # pyca cannot hand out an SM2 key
            raise RenewalRefused(f"{role}.key is not the key of {role}.crt", role=role)
        if node_id_of(leaf) != node_id:
            raise RenewalRefused(f"{role}.crt names node {node_id_of(leaf)!r}, not this node ({node_id})",
                                 role=role, node_id=node_id)
        for purpose in PURPOSES[role]:
            try:
                verify_certificate(leaf, trust, now, new.chains[role][1:], purpose)
            except GwxError as exc:
                raise RenewalRefused(f"{role}.crt cannot serve as this node's {purpose.value} certificate: "
                                     f"{exc.message}", role=role, cause=exc.code) from None


def install_renewal(credentials_dir: Path, node_id: str, new: CredentialSet, passphrase: bytes, *,
                    overlap: dt.timedelta = DEFAULT_OVERLAP, now: dt.datetime,
                    host: str | None = None) -> PreviousSet:
    """Make ``new`` the node's current set, keeping the current one under ``previous/`` for the
    overlap; returns that previous set. ``host``: see :func:`check_credential_set`. The caller
    signals a running node (:func:`signal_node`)."""
    creds = Path(credentials_dir)
    if overlap < dt.timedelta(0):
        raise RenewalRefused("the overlap cannot be negative", overlap=str(overlap))
    with credentials_lock(creds):
        return _install(creds, node_id, new, passphrase, overlap, now, host)


def _install(creds: Path, node_id: str, new: CredentialSet, passphrase: bytes, overlap: dt.timedelta,
             now: dt.datetime, host: str | None) -> PreviousSet:
    _finish_pending(creds)
    roots = [load_certificate((creds / name).read_bytes()) for name in ("root.crt", "tls-root.crt")
             if name == "root.crt" or (creds / name).exists()]  # a 国密 network's TLS: its transport root (TLS only)
    check_credential_set(new, node_id, TrustStore.of(roots), now, host)
    current = {role: load_certificates((creds / f"{role}.crt").read_bytes())[0] for role in ROLES}
    same = [role for role in ROLES if current[role].serial_number == new.leaf(role).serial_number]
    if same:
        raise RenewalRefused(f"the {', '.join(same)} certificate(s) given are the node's current ones: "
                             "nothing to renew", roles=same)
    read_private_key(creds / "enc.key", passphrase)  # the passphrase opens the node's keys: fail before writing
    incoming = creds / INCOMING
    for role in ROLES:
        write_private_key(incoming / f"{role}.key", new.keys[role], passphrase)
        write_public_file(incoming / f"{role}.crt", b"".join(pem(c) for c in new.chains[role]))
    incoming.chmod(0o700)
    until = min(now + overlap, current["enc"].not_valid_after_utc).replace(microsecond=0)
    previous = _keep_previous(creds, current, until, now)
    write_public_file(incoming / READY, b"")
    _finish_pending(creds)
    log.info("node %s renewed its credentials; the previous encryption key is kept until %s",
             node_id, format_time(until))
    return previous


def _names_host(cert: x509.Certificate, host: str) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        return ipaddress.ip_address(host) in san.get_values_for_type(x509.IPAddress)
    except ValueError:
        return host.lower().rstrip(".") in {name.lower() for name in san.get_values_for_type(x509.DNSName)}


def _keep_previous(creds: Path, current: dict[str, x509.Certificate], until: dt.datetime,
                   now: dt.datetime) -> PreviousSet:
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    target = creds / PREVIOUS / stamp
    staging = creds / PREVIOUS / f".{stamp}"
    shutil.rmtree(staging, ignore_errors=True)
    write_secret_file(staging / "enc.key", (creds / "enc.key").read_bytes())
    for role in ROLES:
        write_public_file(staging / f"{role}.crt", pem(current[role]))
    write_public_file(staging / OVERLAP_FILE, json.dumps({"until": format_time(until),
                                                          "renewed_at": format_time(now)}).encode())
    staging.chmod(0o700)
    staging.rename(target)
    fsync_dir(target.parent)
    return PreviousSet(target, until, current)


@contextlib.contextmanager
def credentials_lock(credentials_dir: Path) -> Iterator[None]:
    """Held while a renewal writes ``credentials/`` and while a node reads it
    (:meth:`node.context.NodeCredentials.load`): a node loading at that moment waits the few milliseconds it takes, rather than read
    half a set or take a renewal being written for an interrupted one."""
    fd = os.open(Path(credentials_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def finish_pending(credentials_dir: Path) -> None:
    """Complete a renewal that marked its new set ready, discard one that did not (see the module).
    The caller holds :func:`credentials_lock`."""
    _finish_pending(Path(credentials_dir))


def _finish_pending(credentials_dir: Path) -> None:
    incoming = Path(credentials_dir) / INCOMING
    if not incoming.is_dir():
        return
    if (incoming / READY).exists():
        for role in ROLES:  # key before certificate; a file already moved is simply absent here
            for name in (f"{role}.key", f"{role}.crt"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(incoming / name, Path(credentials_dir) / name)
        fsync_dir(Path(credentials_dir))
    shutil.rmtree(incoming)


def previous_sets(credentials_dir: Path, now: dt.datetime, *, prune: bool = True) -> list[PreviousSet]:
    """The previous sets whose overlap still runs at ``now``, newest first. Those whose overlap
    ended are deleted — the encryption key with them — and so are leftovers of an interrupted
    renewal (unless ``prune`` is False: a reader such as ``gwx node status`` changes nothing); a set
    that cannot be read is left on disk, logged, and not used."""
    base = Path(credentials_dir) / PREVIOUS
    held = []
    for path in sorted(base.iterdir(), reverse=True) if base.is_dir() else ():
        if path.name.startswith("."):  # staged by a renewal that did not finish
            if prune:
                shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            until = dt.datetime.fromisoformat(
                json.loads((path / OVERLAP_FILE).read_text("utf-8"))["until"].replace("Z", "+00:00"))
            certs = {role: load_certificate((path / f"{role}.crt").read_bytes()) for role in ROLES}
        except (OSError, ValueError, KeyError, TypeError, GwxError) as exc:
            log.error("cannot read the previous credentials in %s: %s", path, exc)
            continue
        if until <= now:
            if not prune:
                continue
            shutil.rmtree(path)
            log.info("overlap of the previous credentials ended at %s: their encryption key is destroyed "
                     "(%s)", format_time(until), path.name)
            continue
        held.append(PreviousSet(path, until, certs))
    return held


def signal_node(node_directory: Path) -> int | None:
    """Tell the node running in ``node_directory`` to load its credentials again (SIGHUP); its pid,
    or None when no node runs there."""
    pid = holder(node_directory)
    if not pid:
        return None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:  # it exited between the look and the signal: it will load them at start
        return None
    return pid
