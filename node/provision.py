"""Creating a node directory: configuration, credentials, unit seals, tokens.

``gwx node init`` is a thin wrapper around :func:`init_node`; the demo and the integration tests
call it directly. Either the node was enrolled first (its own keys, certificates the PKI admin signed
from its requests: pki.node_enrolment, pki.seal_enrolment) and init writes the rest, or — the PKI
admin's shortcut — init is given the CA, which issues the node's TLS/signing/encryption credentials
and one seal per hosted unit here. The node's keys are encrypted with the node passphrase.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.api.auth import TokenStore
from node.config import CONFIG_NAME, HostedUnit, Listener, NodeConfig, load_config
from node.config_edit import edit_config, set_peer
from node.config_toml import dump_config
from node.errors import ConfigError, NodeExists
from pki.ca import CertificateAuthority
from pki.certificates import load_certificates, node_id_of, unit_code_of, utcnow
from pki.crl import crl_pem, current_crl
from pki.errors import GwxError
from pki.keystore import write_public_file, write_secret_file
from pki.node_enrolment import REQUEST_FILE, installed_node_id
from pki.seal_store import issue_seal, load_seal_credential
from pki.unit_code import validate_unit_code

UNIT_KEYS = ("code", "name", "level", "parent")

log = logging.getLogger("gwx.provision")


def read_units_file(path: Path) -> list[dict]:
    """UNITS.toml: ``[[units]]`` tables with code and name, optional level and parent — the same
    spelling as node.toml's ``[[units]]``. Unknown keys are errors, as in node.toml."""
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read units file {path}: {exc}", path=str(path)) from None
    if "unit" in raw:
        raise ConfigError(f"{path}: write the hosted units as [[units]] (the spelling node.toml uses), "
                          "not [[unit]]", key="unit", path=str(path))
    unknown = sorted(set(raw) - {"units"})
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)} (only [[units]] tables belong here)",
                          keys=unknown, path=str(path))
    entries = raw.get("units")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path} lists no [[units]] tables", key="units", path=str(path))
    units = []
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not isinstance(e.get("name"), str):
            raise ConfigError(f"{path}: each [[units]] needs a code and a name (strings)", key="units",
                              path=str(path))
        extra = sorted(set(e) - set(UNIT_KEYS))
        if extra:
            raise ConfigError(f"{path}: unknown keys in [[units]] {e['code']}: {', '.join(extra)}",
                              keys=extra, path=str(path))
        for key in ("level", "parent"):
            if key in e and not isinstance(e[key], str):
                raise ConfigError(f"{path}: [[units]] {e['code']} {key} must be a string", key=f"units.{key}",
                                  path=str(path))
        units.append({"code": validate_unit_code(e["code"]), "name": e["name"],
                      "level": e.get("level", ""), "parent": e.get("parent")})
    if len({u["code"] for u in units}) != len(units):
        raise ConfigError(f"{path}: a unit is listed twice", key="units", path=str(path))
    return units


# What init writes into a node directory, node.toml last: a directory holding any of these without a
# node.toml was left by an interrupted init of an older gwx (this one builds beside it and renames).
NODE_ENTRIES = ("credentials", "units", "tokens", "tokens.json", "crl.pem")
# What enrolment put there before init (gwx node request, request-seal, install-certs).
ENROLLED_ENTRIES = ("credentials", "units")


def init_node(directory: Path, node_id: str, ca: CertificateAuthority | None, units: list[dict],
              node_passphrase: bytes, *, host: str | None = None, peer_port: int = 7443,
              local_port: int = 7080, valid_days: int | None = None,
              crls: Sequence[x509.CertificateRevocationList] = (),
              seal_picture: bytes | None = None) -> tuple[NodeConfig, dict[str, str]]:
    """Write a new node directory; returns its config and the tokens created (name → token text).

    With ``ca`` the CA issues the node's credentials and its units' seals here (the PKI admin's
    shortcut, for tests and the demo). Without it — enrolment, the way for real networks — the
    directory already holds what ``gwx node request``/``request-seal`` made and ``gwx node
    install-certs`` installed (``credentials/``, ``units/CODE/``): each key must open with
    ``node_passphrase`` and match its certificate, the certificates must name ``node_id`` and each
    seal its unit; ``crls`` must then hold the network's CRLs (there is no CA here to make one), and
    ``host`` defaults to the address the TLS certificate names.

    All or nothing: everything is built in a temporary directory beside ``directory`` and renamed
    into place (into an existing directory entry by entry, node.toml last), so an interruption
    (Ctrl-C, a full disk, a bad unit) leaves no half-made node behind and a second run starts clean.
    The certificates the CA issued for the failed attempt are revoked (cessationOfOperation): their
    keys are gone, and the CA would otherwise refuse the second run as a duplicate issuance.

    ``crl.pem`` gets ``ca``'s fresh CRL followed by ``crls``: the other CAs' of the network (the
    root's and other intermediates'), which a node under an intermediate needs from the start.

    ``seal_picture`` (PNG): the picture of every unit's seal instead of the round seal drawn for its
    name — drawing one takes ~0.2 s, too long for a bench that provisions thousands of units.
    """
    directory = Path(directory).resolve()
    for name, port in (("peer port", peer_port), ("local port", local_port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{name} must be 0–65535, got {port}", key=name.replace(" ", "_"))
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--dir {directory} is a file, expected a directory (one is created if missing)",
                          path=str(directory))
    if (directory / CONFIG_NAME).exists():
        raise NodeExists(f"{directory} already holds a node; refusing to overwrite it")
    if ca is None:
        host = _check_enrolled(directory, node_id, units, node_passphrase, host, crls)
    host = host or "127.0.0.1"
    leftovers = [name for name in NODE_ENTRIES if (directory / name).exists()
                 and not (ca is None and name in ENROLLED_ENTRIES)]
    if leftovers:
        raise NodeExists(f"{directory} holds {', '.join(leftovers)} but no {CONFIG_NAME}: what an interrupted "
                         "gwx node init leaves behind. Remove them and run it again (revoke the certificates "
                         "it issued if the keys may have been copied)", leftovers=", ".join(leftovers))
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.init-", dir=directory.parent))  # mode 0700
    issued_before = {c.serial_number for c in ca.issued()} if ca is not None else set()
    try:
        tokens = _build_node(staging, node_id, ca, units, node_passphrase, host=host, peer_port=peer_port,
                             local_port=local_port, valid_days=valid_days, crls=crls, seal_picture=seal_picture)
        if directory.exists():  # an existing (e.g. empty) directory: move in, node.toml last
            directory.chmod(0o700)
            for entry in sorted(staging.iterdir(), key=lambda e: e.name == CONFIG_NAME):
                entry.rename(directory / entry.name)
            staging.rmdir()
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if ca is not None:
            _withdraw_issued(ca, issued_before, node_id, {u["code"] for u in units})
        raise
    return load_config(directory), tokens


def _withdraw_issued(ca: CertificateAuthority, issued_before: set[int], node_id: str, units: set[str]) -> None:
    """Revoke what the CA issued for this node and its units since ``issued_before`` (a failed init's
    certificates, whose keys were deleted with the staging directory)."""
    try:
        for cert in ca.issued():
            if cert.serial_number not in issued_before and (node_id_of(cert) == node_id
                                                             or unit_code_of(cert) in units):
                ca.revoke(cert, "cessation_of_operation")
    except (GwxError, OSError) as exc:  # the failure being reported matters more; say what is left
        log.warning("could not revoke the certificates of the failed node init: %s", exc)


def _build_node(directory: Path, node_id: str, ca: CertificateAuthority | None, units: list[dict],
                node_passphrase: bytes, *, host: str, peer_port: int, local_port: int, valid_days: int | None,
                crls: Sequence[x509.CertificateRevocationList], seal_picture: bytes | None) -> dict[str, str]:
    if ca is not None:
        ca.issue_node(node_id, host, directory / "credentials", node_passphrase, valid_days=valid_days)
    hosted = []
    for u in units:
        seal_dir = directory / "units" / u["code"]
        if ca is not None:
            issue_seal(ca, u["code"], u["name"], seal_dir, node_passphrase, valid_days=valid_days,
                       image_png=seal_picture)
        hosted.append(HostedUnit(u["code"], u["name"], seal_dir, u.get("level") or "", u.get("parent")))
    config = NodeConfig(directory=directory, node_id=node_id,
                        peer_api=Listener(host, peer_port, f"https://{_url_host(host)}:{peer_port}"),
                        local_api=Listener("127.0.0.1", local_port), units=tuple(hosted))
    own = _crl_pem(ca) if ca is not None else b""
    write_public_file(directory / "crl.pem", own + b"".join(crl_pem(c) for c in crls))
    tokens: dict[str, str] = {}
    store = TokenStore(config.tokens_path)
    _, tokens["operator"] = store.issue("值班员", "operator")
    for u in hosted:
        _, tokens[f"clerk-{u.code}"] = store.issue(f"{u.name}收发员", "clerk", u.code)
    for name, token in tokens.items():
        write_secret_file(directory / "tokens" / f"{name}.token", token.encode())
    (directory / "tokens").chmod(0o700)
    write_public_file(directory / CONFIG_NAME, dump_config(config).encode())  # last: the node exists
    return tokens


def _check_enrolled(directory: Path, node_id: str, units: list[dict], passphrase: bytes, host: str | None,
                    crls: Sequence[x509.CertificateRevocationList]) -> str:
    """Init without a CA: the enrolled credentials and seals are complete and this node's; the host
    the TLS certificate names when none is given."""
    credentials = directory / "credentials"
    if not (credentials / REQUEST_FILE).exists() and not (credentials / "tls.crt").exists():
        raise ConfigError(f"{credentials} holds no credentials: without --ca, make them first (gwx node request, "
                          "the PKI admin's gwx pki sign-request, gwx node install-certs), or give --ca",
                          path=str(credentials))
    enrolled = installed_node_id(credentials, passphrase)
    if enrolled != node_id:
        raise ConfigError(f"the certificates in {credentials} are node {enrolled!r}'s, not {node_id!r}",
                          key="node_id")
    for u in units:
        seal_dir = directory / "units" / u["code"]
        if not (seal_dir / "seal.esl").exists():
            raise ConfigError(f"unit {u['code']} has no seal in {seal_dir}: gwx node request-seal, then install "
                              "the seal maker's response (gwx node install-certs)", key="units", unit=u["code"])
        seal = load_seal_credential(seal_dir, passphrase)
        if seal.seal.unit_code != u["code"]:
            raise ConfigError(f"{seal_dir} holds the seal of unit {seal.seal.unit_code}, not {u['code']}",
                              key="units", unit=u["code"])
    if not crls:
        raise ConfigError("without --ca, give the network's CRLs (--crl FILE, from the PKI admin's gwx pki crl): "
                          "a node without them refuses every peer", key="crl")
    tls = load_certificates((credentials / "tls.crt").read_bytes())[0]
    san = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = [str(v) for v in san.get_values_for_type(x509.IPAddress)] + san.get_values_for_type(x509.DNSName)
    if host is None:
        return names[0] if names else "127.0.0.1"
    if _normal_host(host) not in {_normal_host(n) for n in names}:
        raise ConfigError(f"--host {host} is not in the node's TLS certificate ({', '.join(names)}): peers check it "
                          "and would refuse every connection. Leave --host out, or have the request signed again "
                          "with gwx pki sign-request --host", key="host")
    return host


def _normal_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def add_peer(directory: Path, node_id: str, url: str, units: list[str],
             names: dict[str, str] | None = None) -> NodeConfig:
    """Add or replace a peer in ``node.toml``, validated first and with the file's comments kept."""
    return edit_config(directory, lambda doc: set_peer(doc, node_id, url, units, names))


def cas_without_crl(ca: CertificateAuthority, crls: Sequence[x509.CertificateRevocationList]) -> list[str]:
    """The CAs above ``ca`` (its issuers up to the root) that none of ``crls`` comes from: a node
    ``ca`` issues refuses every certificate under them (its own peers included) until it has them —
    on a 国密 network the transport CAs above its TLS certificate's issuer too."""
    transport = ca.separate_transport()
    return _without_crl([*ca.chain[1:], *(transport.chain[1:] if transport else ())], crls)


def enrolled_cas_without_crl(directory: Path, crls: Sequence[x509.CertificateRevocationList]) -> list[str]:
    """The same for an enrolled node, whose CA's own CRL is not added for it: the CAs its
    certificates' chains name, and its roots (on a 国密 network the transport root, ``tls-root.crt``, too)."""
    credentials = Path(directory) / "credentials"
    cas = [c for role in ("tls", "sign", "enc") for c in load_certificates((credentials / f"{role}.crt").read_bytes())[1:]]
    roots = [c for name in ("root.crt", "tls-root.crt") if (credentials / name).exists()
             for c in load_certificates((credentials / name).read_bytes())]
    return _without_crl(list(dict.fromkeys([*cas, *roots])), crls)


def _without_crl(cas: Sequence[x509.Certificate], crls: Sequence[x509.CertificateRevocationList]) -> list[str]:
    issuers = {c.issuer for c in crls}
    return [cert.subject.rfc4514_string() for cert in cas if cert.subject not in issuers]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _crl_pem(ca: CertificateAuthority) -> bytes:
    """The CA's current CRL, so a new node checks revocation from its first minute (and, on a 国密
    network, its transport CA's: the node judges its peers' TLS certificates by it)."""
    return b"".join(current_crl(c, utcnow()).public_bytes(serialization.Encoding.PEM)
                    for c in (ca, ca.separate_transport()) if c is not None)
