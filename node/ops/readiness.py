"""Readiness: can this node do its work right now, and if not, what blocks it?

Liveness (``/healthz``: the process answers) says nothing about whether a peer's envelope would
be accepted. A node whose CRL is out of date refuses every envelope (``ENV_REVOCATION_UNKNOWN``)
while looking perfectly alive; readiness names that. Each check has a verdict:

* ``ok``   — nothing to do;
* ``warn`` — works today, needs the operator soon (a certificate or seal expiring within
  :data:`EXPIRY_WARNING`, the disk too full for one envelope of ``limits.max_envelope_bytes``);
* ``fail`` — blocks the node's work now; the node is *not ready*.

The checks, all read from the node directory (so ``gwx node status`` gives the same answer
whether or not the node is running):

* ``revocation`` — every CRL in ``crl.pem`` is current, and the node's own signing chain is judged
  by them as a peer's is. Stale, unreadable, or no CRL for a CA of the chain fails; a stale CRL's
  message names when its next update passed and why no newer one is here (the last fetch from the
  parent, :mod:`node.ops.crl_state`). Envelopes meanwhile are refused with ``ENV_REVOCATION_UNKNOWN``,
  a *try again* (:mod:`node.error_kinds`): senders keep them queued, nothing bounces.
* ``certificates`` — the node's TLS, signing and encryption certificates are within validity.
* ``seals`` — each hosted unit's seal (SESeal validity and its certificate) is within validity; units
  hosted without a seal are counted (warn: their 签收/退回 carry no unit signature).
* ``store`` — the database can be read (read-only, see :mod:`node.ops.status`) and its schema is one
  this gwx knows.
* ``directory`` — the network directory held (:mod:`node.ops.directory_state`): its version, age and
  expiry. Past its next update or expired it is ``warn``, never ``fail``: the node keeps routing on
  its last good copy (an expired directory never stops the exchange). A node with a ``[parent]``
  that has fetched none yet is ``warn`` too, and so is one whose directory names a transport root (a
  国密 network's, for node TLS) other than the one it trusts for TLS: peers under the directory's
  would be refused (``NODE_TLS_ROOT_MISMATCH``).
* ``disk`` — free space where blobs are written.
* ``folders`` (only with ``[[folders]]``) — every watched folder's root and its subfolders are there;
  a root that is not (a share not mounted) fails with ``FOLDER_ROOT_MISSING`` (``FOLDER_ROOT_UNREADABLE``
  when it cannot even be looked at: EACCES, a stale NFS handle), one whose subfolders are gone (the
  share came back empty) with ``FOLDER_SUBFOLDERS_MISSING`` until the watcher has made them again:
  meanwhile that unit's drops wait and what it receives is not written (the node never creates a
  root, :mod:`adapters.folder.layout`).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from cryptography import x509

from adapters.folder.layout import FolderLayout
from exchange_protocol.directory import DirectoryStatus
from exchange_protocol.envelope import format_time
from node.config import NodeConfig
from node.ops.crl_state import fetch_note
from node.ops.directory_state import held_directory
from node.renewal import previous_sets
from pki.certificates import load_certificate, load_certificates
from pki.crl import crl_number, load_crls
from pki.errors import CertificateRevoked, GwxError, RevocationUnknown
from pki.revocation import CrlChecker
from pki.seal import parse_seal
from pki.seal_store import CERT_FILE, SEAL_FILE, seal_installed

OK, WARN, FAIL = "ok", "warn", "fail"
EXPIRY_WARNING = dt.timedelta(days=30)
MIN_FREE_BYTES = 512 * 1024**2  # below this a blob write may fail half-way through a batch


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str  # ok / warn / fail
    message: str
    code: str | None = None  # the typed error behind a failure, when there is one

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def report(checks: Iterable[Check]) -> dict[str, Any]:
    checks = list(checks)
    return {"ready": all(c.verdict != FAIL for c in checks), "checks": [c.to_dict() for c in checks]}


def file_checks(config: NodeConfig, now: dt.datetime) -> list[Check]:
    """Every check that needs only the node directory (all but ``store``)."""
    checks = [_revocation(config, now), _certificates(config, now), _seals(config, now), _directory(config, now),
              _disk(config)]
    return checks + ([_folders(config)] if config.folders else [])


def store_check(problem: GwxError | Exception | None) -> Check:
    if problem is None:
        return Check("store", OK, "the database answers")
    return Check("store", FAIL, f"the database cannot be read: {problem}", getattr(problem, "code", "STORE_ERROR"))


def _revocation(config: NodeConfig, now: dt.datetime) -> Check:
    try:
        crls = load_crls(config.crl_path.read_bytes())
        chain = load_certificates((config.credentials_dir / "sign.crt").read_bytes())
        root = load_certificate(config.trust_root_path.read_bytes())
    except FileNotFoundError as exc:
        return Check("revocation", FAIL, f"{exc.filename} is missing: every envelope is refused",
                     "ENV_REVOCATION_UNKNOWN")
    except (OSError, GwxError, ValueError) as exc:
        return Check("revocation", FAIL, f"cannot read the CRL or the node's certificates: {exc}",
                     "ENV_REVOCATION_UNKNOWN")
    refused = ("; envelopes are refused with ENV_REVOCATION_UNKNOWN (senders keep them and try again) until a "
               f"current CRL is in {config.crl_path.name}")
    # Every CRL in the file must be current: a stale one blocks whatever its CA issued. (Of one CA's
    # several generations, the newest decides.)
    newest: dict[x509.Name, x509.CertificateRevocationList] = {}
    for crl in crls:
        if crl.issuer not in newest or crl_number(crl) > crl_number(newest[crl.issuer]):
            newest[crl.issuer] = crl
    stale = [c for c in newest.values() if c.next_update_utc is None or c.next_update_utc < now]
    if stale:
        names = "; ".join(f"the CRL of '{c.issuer.rfc4514_string()}' #{crl_number(c)} is out of date: next-update "
                          + (f"passed at {format_time(c.next_update_utc)}" if c.next_update_utc else "never announced")
                          for c in stale)
        return Check("revocation", FAIL, f"{names}; {fetch_note(config)}" + refused, "PKI_REVOCATION_STALE")
    # This node's own signing chain, judged as a peer judges it.
    checker = CrlChecker(crls)
    try:
        for cert, issuer in zip(chain, [*chain[1:], root], strict=True):
            if cert != issuer:
                checker(cert, issuer, now)
    except CertificateRevoked as exc:
        return Check("revocation", FAIL, f"this node's own signing chain is revoked: {exc.message}", exc.code)
    except RevocationUnknown as exc:
        return Check("revocation", FAIL, f"{config.crl_path.name}: {exc.message}" + refused, exc.code)
    due = min(c.next_update_utc for c in newest.values())  # all have one: none is stale
    if due - now < dt.timedelta(days=1):
        return Check("revocation", WARN, f"a CRL must be replaced before {due.isoformat()}")
    return Check("revocation", OK, f"{len(crls)} CRL(s) current until {due.isoformat()}")


Verdict = tuple[str, str, dt.datetime]  # verdict, message, end of validity (to name the first to expire)
NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)


def _validity(what: str, not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> Verdict:
    if now < not_before:
        return FAIL, f"{what} is not valid before {not_before.isoformat()}", not_after
    if now > not_after:
        return FAIL, f"{what} expired on {not_after.isoformat()}", not_after
    if not_after - now < EXPIRY_WARNING:
        return WARN, f"{what} expires on {not_after.isoformat()}", not_after
    return OK, f"{what} valid until {not_after.isoformat()}", not_after


def _worst(name: str, results: list[Verdict], code: str, empty: str) -> Check:
    for verdict in (FAIL, WARN):
        bad = [m for v, m, _ in results if v == verdict]
        if bad:
            return Check(name, verdict, "; ".join(bad), code if verdict == FAIL else None)
    if not results:
        return Check(name, OK, empty)
    return Check(name, OK, "first to expire: " + min(results, key=lambda r: r[2])[1])


CERTIFICATE_ROLES = ("tls", "sign", "enc")


def node_certificate(config: NodeConfig, role: str) -> x509.Certificate:
    """The node's own certificate for ``role`` (one of :data:`CERTIFICATE_ROLES`); raises OSError,
    GwxError, ValueError or IndexError when it cannot be read."""
    return load_certificates((config.credentials_dir / f"{role}.crt").read_bytes())[0]


def seal_validity(seal_dir) -> tuple[dt.datetime, dt.datetime]:
    """When a unit's seal may be used: the SESeal's validity within its certificate's (raises as
    :func:`node_certificate` does when it cannot be read)."""
    seal = parse_seal((seal_dir / SEAL_FILE).read_bytes())
    cert = load_certificate((seal_dir / CERT_FILE).read_bytes())
    return max(seal.valid_start, cert.not_valid_before_utc), min(seal.valid_end, cert.not_valid_after_utc)


def _certificates(config: NodeConfig, now: dt.datetime) -> Check:
    results: list[Verdict] = []
    for role in CERTIFICATE_ROLES:
        try:
            cert = node_certificate(config, role)
        except (OSError, GwxError, ValueError, IndexError) as exc:
            results.append((FAIL, f"{role}.crt cannot be read: {exc}", NEVER))
            continue
        results.append(_validity(f"{role}.crt", cert.not_valid_before_utc, cert.not_valid_after_utc, now))
    check = _worst("certificates", results, "PKI_CERT_EXPIRED", "")
    overlapping = previous_sets(config.credentials_dir, now, prune=False)
    if overlapping:  # a renewal's overlap: say until when the previous encryption key still opens envelopes
        until = min(p.until for p in overlapping)
        check = replace(check, message=f"{check.message}; renewed: the previous encryption key opens "
                                       f"envelopes until {format_time(until)}")
    return check


def _seals(config: NodeConfig, now: dt.datetime) -> Check:
    results: list[Verdict] = []
    unsealed: list[str] = []
    for unit in config.units:
        if not seal_installed(unit.seal_dir):
            unsealed.append(unit.code)
            continue
        try:
            start, end = seal_validity(unit.seal_dir)
        except (OSError, GwxError, ValueError) as exc:
            results.append((FAIL, f"seal of {unit.code} cannot be read: {exc}", NEVER))
            continue
        results.append(_validity(f"seal of {unit.code} {unit.name}", start, end, now))
    if unsealed:
        shown = ", ".join(unsealed[:5]) + (", …" if len(unsealed) > 5 else "")
        results.append((WARN, f"{len(unsealed)} hosted unit{'s' if len(unsealed) > 1 else ''} without a seal "
                        f"({shown}): their 签收/退回 carry no unit signature, and they cannot send", NEVER))
    return _worst("seals", results, "SEAL_EXPIRED", "no hosted units")


def _directory(config: NodeConfig, now: dt.datetime) -> Check:
    try:
        directory = held_directory(config)
    except (OSError, GwxError) as exc:
        return Check("directory", WARN, f"{config.network_directory_path.name} cannot be read ({exc}); "
                     "routing uses the static peers", getattr(exc, "code", None))
    if directory is None:
        if config.parent is not None:
            return Check("directory", WARN, f"no network directory yet: none fetched from the parent "
                         f"{config.parent.node_id} so far", "NODE_NO_DIRECTORY")
        return Check("directory", OK, "no network directory: static peers only")
    age = _days(now - directory.issued_at)
    what = f"network directory '{directory.network}' version {directory.version} (issued {age} ago"
    mismatch = _tls_root_mismatch(config, directory.transport_root)
    if mismatch:
        return Check("directory", WARN, f"{what}) {mismatch}", "NODE_TLS_ROOT_MISMATCH")
    status = directory.status(now)
    if status is DirectoryStatus.EXPIRED:
        return Check("directory", WARN, f"{what}) EXPIRED on {format_time(directory.expires)}; still used for "
                     "routing — the root operator must publish a new one")
    if status is DirectoryStatus.DUE:
        return Check("directory", WARN, f"{what}) is past its next update ({format_time(directory.next_update)}); "
                     f"it expires on {format_time(directory.expires)}")
    return Check("directory", OK, f"{what}), current until {format_time(directory.next_update)}, "
                 f"expires {format_time(directory.expires)}")


def _tls_root_mismatch(config: NodeConfig, named: x509.Certificate | None) -> str | None:
    """What is wrong when the directory names a transport root this node does not trust for TLS."""
    if named is None:
        return None
    try:
        held = load_certificate(config.tls_root_path.read_bytes())
    except (OSError, GwxError) as exc:
        return f"names a transport root for node TLS, and {config.tls_root_path.name} cannot be read ({exc})"
    if held == named:
        return None
    return (f"names the transport root '{named.subject.rfc4514_string()}' for node TLS, but this node trusts "
            f"'{held.subject.rfc4514_string()}' ({config.tls_root_path.name}): peers under the directory's are "
            "refused — install the network's transport root there (from the PKI admin, checked out of band)")


def _days(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _disk(config: NodeConfig) -> Check:
    path = config.data_dir if config.data_dir.exists() else config.directory
    free = shutil.disk_usage(path).free
    text = f"{free / 1024**3:.1f} GiB free in {path}"
    if free < MIN_FREE_BYTES:
        return Check("disk", FAIL, text + f" (needs at least {MIN_FREE_BYTES // 1024**2} MiB)", "STORE_DISK_FULL")
    if free < config.limits.max_envelope_bytes:
        return Check("disk", WARN, text + " — less than one envelope of limits.max_envelope_bytes")
    return Check("disk", OK, text)


def _folders(config: NodeConfig) -> Check:
    missing = []
    for folder in config.folders:
        try:
            FolderLayout(folder.path).check()
        except GwxError as exc:
            missing.append((folder.unit, exc))
    if missing:
        return Check("folders", FAIL, "; ".join(f"unit {unit}: {exc.message}" for unit, exc in missing),
                     missing[0][1].code)
    return Check("folders", OK, f"{len(config.folders)} watched folder(s) present")
