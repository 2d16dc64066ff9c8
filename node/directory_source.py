"""The root operator's source of the network directory: one TOML file of nodes and units.

``gwx net build`` reads it (:func:`read_source`) into an :class:`~exchange_protocol.directory.Directory`,
which checks it as any received directory is checked (types, 统一社会信用代码 with check character,
unique ids and codes, every unit's hosting node listed, parents listed, no cycle, one root node);
then :func:`~exchange_protocol.directory.check_certificates` judges every node certificate under the
network's root, and the directory signer signs it. ``deploy/examples/network.toml`` is a commented
example. The shape::

    network = "常德市电子政务外网"     version = 7     next_update_days = 1     valid_days = 30
    links = [["county-a", "county-b"]]                 # direct links besides the tree (optional)
    [revocation]  crl = ["https://…/crl.pem"]  ocsp = ["https://…/ocsp"]
    [[nodes]]  id, urls, level, parent (omitted for the root node), credentials, previous (optional)
    [[units]]  code, name, level, node, parent, supervisor (the last two optional)
    [supervision]  grace_working_days = 3  calendar = "holidays-2026.toml"   # both optional

``[supervision]`` sets the 督办 rules for every node of the network (what it leaves out stays each
node's node.toml value); ``calendar`` is a file in the format of a node's holiday calendar
(:mod:`exchange_protocol.supervision`), relative to the source, copied into the directory.

Certificates come from the paths the source names, not from a CA's records: ``credentials`` is the
directory ``gwx pki issue-node --out`` wrote for that node (``tls.crt``, ``sign.crt``, ``enc.crt``,
each the leaf then its intermediates), or for an enrolled node the response file ``gwx pki
sign-request --out`` wrote (its three certificates, then the intermediates), relative to the source
file. So a network whose counties have CAs of their own builds the same way, and the operator sees
which files went in. ``previous`` lists the credential directories (or responses) a node's renewal
replaced (``gwx node renew``): their certificates are published beside the current ones until the
operator drops them after the overlap (the build refuses one that has expired).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

from cryptography.x509.oid import NameOID

from exchange_protocol.directory import Directory, encode_certificate, level_of
from exchange_protocol.envelope import format_time
from exchange_protocol.supervision import NetworkSupervision, parse_calendar
from node.errors import ConfigError
from pki.certificates import load_certificates
from pki.errors import ErrorKind, MalformedEncoding, ResponseInvalid
from pki.node_enrolment import split_response
from pki.profiles import NODE_ROLES

TOP_KEYS = {"network", "version", "next_update_days", "valid_days", "links", "revocation", "nodes", "units",
            "supervision"}
NODE_KEYS = {"id", "urls", "level", "parent", "credentials", "previous"}
UNIT_KEYS = {"code", "name", "level", "node", "parent", "supervisor"}
ORGANIZATIONAL_UNIT = NameOID.ORGANIZATIONAL_UNIT_NAME
CREDENTIAL_FILES = {"tls": "tls.crt", "signing": "sign.crt", "encryption": "enc.crt"}


class DirectorySourceInvalid(ConfigError):
    """The network source (TOML) cannot be read or names something that is not there; the message
    names the table and key. What the directory itself refuses keeps its DIR_* code."""

    code = "NET_SOURCE_INVALID"
    kind = ErrorKind.INVALID_INPUT


def read_source(path: Path, now: dt.datetime) -> Directory:
    """The directory the source at ``path`` describes, issued at ``now`` (not yet signed)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DirectorySourceInvalid(f"{path} is not valid TOML: {exc}", path=str(path)) from None
    except UnicodeDecodeError:
        raise DirectorySourceInvalid(f"{path} is not UTF-8", path=str(path)) from None
    _known(raw, TOP_KEYS, str(path))
    version = _take(raw, "version", int, str(path))
    next_days = _take(raw, "next_update_days", int, str(path), default=1)
    valid_days = _take(raw, "valid_days", int, str(path), default=30)
    if not 0 < next_days <= valid_days:
        raise DirectorySourceInvalid(f"{path}: need 0 < next_update_days ≤ valid_days, have {next_days} and "
                                     f"{valid_days}", path=str(path))
    issued = now.astimezone(dt.UTC).replace(microsecond=0)
    nodes = raw.get("nodes")
    units = raw.get("units")
    if not isinstance(nodes, list) or not isinstance(units, list):
        raise DirectorySourceInvalid(f"{path} needs [[nodes]] and [[units]] tables", path=str(path))
    revocation = raw.get("revocation", {})
    if not isinstance(revocation, dict):
        raise DirectorySourceInvalid(f"{path}: [revocation] must be a table", path=str(path))
    _known(revocation, {"crl", "ocsp"}, f"{path} [revocation]")
    value = {
        "format": "gwx-directory/1", "network": raw.get("network"), "version": version,
        "issued_at": format_time(issued), "next_update": format_time(issued + dt.timedelta(days=next_days)),
        "expires": format_time(issued + dt.timedelta(days=valid_days)),
        "nodes": [_node(n, i, path) for i, n in enumerate(nodes)],
        "units": [_unit(u, i, path) for i, u in enumerate(units)],
        "links": raw.get("links", []),
        "revocation": {"crl": revocation.get("crl", []), "ocsp": revocation.get("ocsp", [])},
    }
    if "supervision" in raw:
        value["supervision"] = _supervision(raw["supervision"], path)
    return Directory.from_json(value)


def _supervision(raw: Any, source: Path) -> dict[str, Any]:
    """``[supervision]`` of the source as the directory carries it (its values checked there)."""
    where = f"{source} [supervision]"
    if not isinstance(raw, dict) or not raw:
        raise DirectorySourceInvalid(f"{where} must be a table with grace_working_days and/or calendar",
                                     path=str(source))
    _known(raw, {"grace_working_days", "calendar"}, where)
    value: dict[str, Any] = {}
    if "grace_working_days" in raw:
        value["grace_working_days"] = raw["grace_working_days"]
    if "calendar" in raw:
        file = source.parent / _take(raw, "calendar", str, where)
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise DirectorySourceInvalid(f"{where}: cannot read the holiday calendar {file}: {exc.strerror}",
                                         path=str(file)) from None
        value["calendar"] = NetworkSupervision(calendar=parse_calendar(data, source=str(file))).to_json()["calendar"]
    return value


def _node(raw: Any, index: int, source: Path) -> dict[str, Any]:
    where = f"{source} [[nodes]] #{index + 1}"
    if not isinstance(raw, dict):
        raise DirectorySourceInvalid(f"{where} must be a table", path=str(source))
    _known(raw, NODE_KEYS, where)
    where = f"{where} ({raw.get('id')})"
    certificates, chain = _credentials(source.parent / _take(raw, "credentials", str, where), where)
    previous = raw.get("previous", [])
    if not isinstance(previous, list) or not all(isinstance(p, str) for p in previous):
        raise DirectorySourceInvalid(f"{where}: previous must be a list of credential directories", key="previous")
    node = {"id": raw.get("id"), "urls": raw.get("urls"), "level": _level(raw.get("level")),
            "parent": raw.get("parent"), "certificates": certificates, "chain": chain}
    if previous:
        node["previous"] = [_credentials(source.parent / p, where)[0] for p in previous]
    return node


def _credentials(folder: Path, where: str) -> tuple[dict[str, str], list[str]]:
    """The leaf certificates of a credential directory (or of a response file) by role, and the
    intermediates after them (tls.crt's first; a 国密 network's TLS ones differ from the others')."""
    if folder.resolve().is_file():  # an enrolled node's response: its credentials stay on the node
        found = _from_response(folder.resolve(), where)
        return found["certificates"], found["chain"]
    certificates, chain = {}, []
    for role, name in CREDENTIAL_FILES.items():
        file = folder.resolve() / name
        try:
            certs = load_certificates(file.read_bytes())
        except OSError as exc:
            raise DirectorySourceInvalid(f"{where}: cannot read {file}: {exc.strerror}", path=str(file)) from None
        except MalformedEncoding:
            certs = []
        if not certs:
            raise DirectorySourceInvalid(f"{where}: {file} holds no PEM certificate", path=str(file))
        certificates[role] = encode_certificate(certs[0])
        chain += [encoded for encoded in map(encode_certificate, certs[1:]) if encoded not in chain]
    return certificates, chain


def _from_response(file: Path, where: str) -> dict[str, Any]:
    """A node's certificates from the response ``gwx pki sign-request`` wrote for it (an enrolled
    node's credentials directory is on the node): each leaf by the role its subject's OU names."""
    try:
        leaves, cas = split_response(file.read_bytes())
    except ResponseInvalid as exc:
        raise DirectorySourceInvalid(f"{where}: {file} is neither a credentials directory nor a response of gwx "
                                     f"pki sign-request: {exc.message}", path=str(file)) from None
    by_ou = {str(a.value): c for c in leaves for a in c.subject.get_attributes_for_oid(ORGANIZATIONAL_UNIT)}
    missing = [ou for ou in NODE_ROLES if ou not in by_ou]
    if missing:
        raise DirectorySourceInvalid(f"{where}: {file} lacks the {', '.join(missing)} certificate(s)", path=str(file))
    return {"certificates": {role: encode_certificate(by_ou[ou]) for role, ou in zip(CREDENTIAL_FILES, NODE_ROLES,
                                                                                      strict=True)},
            "chain": [encode_certificate(c) for c in cas]}


def _unit(raw: Any, index: int, source: Path) -> dict[str, Any]:
    where = f"{source} [[units]] #{index + 1}"
    if not isinstance(raw, dict):
        raise DirectorySourceInvalid(f"{where} must be a table", path=str(source))
    _known(raw, UNIT_KEYS, where)
    return {"code": raw.get("code"), "name": raw.get("name"), "level": _level(raw.get("level")),
            "node": raw.get("node"), "parent": raw.get("parent"), "supervisor": raw.get("supervisor")}


def _level(value: Any) -> Any:
    """A level as the directory names it (Chinese names read as their English ones; anything else
    is left for the directory's check to refuse with its path)."""
    return (level_of(value) or value) if isinstance(value, str) else value


def _known(table: dict, keys: set[str], where: str) -> None:
    unknown = sorted(set(table) - keys)
    if unknown:
        raise DirectorySourceInvalid(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(keys))})",
                                     keys=unknown)


def _take(table: dict, key: str, kind: type, where: str, default: Any = None) -> Any:
    value = table.get(key, default)
    if value is None or not isinstance(value, kind) or isinstance(value, bool):
        raise DirectorySourceInvalid(f"{where}: {key} must be {'an integer' if kind is int else 'a string'}",
                                     key=key)
    return value
