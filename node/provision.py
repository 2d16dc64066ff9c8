"""Creating a node directory: configuration, credentials, unit seals, tokens.

``gwx node init`` is a thin wrapper around :func:`init_node`; the demo and the integration tests
call it directly. The PKI admin's CA issues the node's TLS/signing/encryption credentials and one
seal per hosted unit; the node's keys are encrypted with the node passphrase.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.api.auth import TokenStore
from node.config import CONFIG_NAME, HostedUnit, Listener, NodeConfig, Peer, dump_config, load_config
from node.errors import ConfigError, NodeExists
from pki.ca import CertificateAuthority, utcnow
from pki.crl import build_crl, crl_pem
from pki.keystore import write_public_file, write_secret_file
from pki.seal_store import issue_seal
from pki.unit_code import validate_unit_code


def read_units_file(path: Path) -> list[dict]:
    """UNITS.toml: ``[[unit]]`` (or ``[[units]]``) tables with code, name, optional level, parent."""
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read units file {path}: {exc}") from None
    entries = raw.get("unit", raw.get("units"))
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path} lists no [[unit]] tables")
    units = []
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not isinstance(e.get("name"), str):
            raise ConfigError(f"{path}: each [[unit]] needs a code and a name")
        units.append({"code": validate_unit_code(e["code"]), "name": e["name"],
                      "level": e.get("level", ""), "parent": e.get("parent")})
    return units


def init_node(directory: Path, node_id: str, ca: CertificateAuthority, units: list[dict],
              node_passphrase: bytes, *, host: str = "127.0.0.1", peer_port: int = 7443,
              local_port: int = 7080, valid_days: int | None = None,
              crls: Sequence[x509.CertificateRevocationList] = ()) -> tuple[NodeConfig, dict[str, str]]:
    """Write a new node directory; returns its config and the tokens created (name → token text).

    ``crl.pem`` gets ``ca``'s fresh CRL followed by ``crls``: the other CAs' of the network (the
    root's and other intermediates'), which a node under an intermediate needs from the start.
    """
    directory = Path(directory).resolve()
    if (directory / CONFIG_NAME).exists():
        raise NodeExists(f"{directory} already holds a node; refusing to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca.issue_node(node_id, host, directory / "credentials", node_passphrase, valid_days=valid_days)
    hosted = []
    for u in units:
        seal_dir = directory / "units" / u["code"]
        issue_seal(ca, u["code"], u["name"], seal_dir, node_passphrase, valid_days=valid_days)
        hosted.append(HostedUnit(u["code"], u["name"], seal_dir, u.get("level") or "", u.get("parent")))
    config = NodeConfig(directory=directory, node_id=node_id,
                        peer_api=Listener(host, peer_port, f"https://{_url_host(host)}:{peer_port}"),
                        local_api=Listener("127.0.0.1", local_port), units=tuple(hosted))
    write_public_file(directory / CONFIG_NAME, dump_config(config).encode())
    write_public_file(directory / "crl.pem", _crl_pem(ca) + b"".join(crl_pem(c) for c in crls))
    tokens: dict[str, str] = {}
    store = TokenStore(config.tokens_path)
    _, tokens["operator"] = store.issue("值班员", "operator")
    for u in hosted:
        _, tokens[f"clerk-{u.code}"] = store.issue(f"{u.name}收发员", "clerk", u.code)
    for name, token in tokens.items():
        write_secret_file(directory / "tokens" / f"{name}.token", token.encode())
    (directory / "tokens").chmod(0o700)
    return load_config(directory), tokens


def add_peer(directory: Path, node_id: str, url: str, units: list[str],
             names: dict[str, str] | None = None) -> NodeConfig:
    config = load_config(directory)
    peers = [p for p in config.peers if p.node_id != node_id]
    peers.append(Peer(node_id, url, tuple(validate_unit_code(u) for u in units),
                      tuple((validate_unit_code(c), n) for c, n in (names or {}).items())))
    new = replace(config, peers=tuple(peers))
    write_public_file(new.directory / CONFIG_NAME, dump_config(new).encode())
    return load_config(directory)


def cas_without_crl(ca: CertificateAuthority, crls: Sequence[x509.CertificateRevocationList]) -> list[str]:
    """The CAs above ``ca`` (its issuers up to the root) that none of ``crls`` comes from: a node
    ``ca`` issues refuses every certificate under them (its own peers included) until it has them."""
    issuers = {c.issuer for c in crls}
    return [cert.subject.rfc4514_string() for cert in ca.chain[1:] if cert.subject not in issuers]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _crl_pem(ca: CertificateAuthority) -> bytes:
    """The CA's current CRL, so a new node checks revocation from its first minute."""
    return build_crl(ca, utcnow()).public_bytes(serialization.Encoding.PEM)
