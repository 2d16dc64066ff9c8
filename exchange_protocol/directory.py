"""The network directory as a value: every node and unit of one network, and what links them.

The pattern of X-Road's global configuration, without its failure mode. The network's root
operator publishes one :class:`Directory`: every node (id, peer URLs, its TLS, signing and
encryption certificates, parent node, level), every unit (统一社会信用代码, name, level, parent
unit, supervising unit, hosting node), the direct links allowed between nodes besides the tree,
where CRLs and OCSP are served, a version that only grows, and when it was issued, when the next
one is due and when it expires. Signing and verifying it is :mod:`exchange_protocol.directory_signing`.

A :class:`Directory` is always well formed: :meth:`Directory.from_json` (untrusted input) and
:func:`check` (values built in code) refuse, with a typed ``DIR_*`` error naming the place, a
field of the wrong type, an unknown or duplicate id or code, a bad check character, a unit whose
hosting node or parent is not listed, a node tree with a cycle or without exactly one root.

Expiry is a status (:meth:`Directory.status`), never a refusal: a node keeps routing on its last
good directory after it expires and raises the alarm (X-Road stops after 72 hours, the failure
mode to avoid). Node certificates are only parsed and matched to their node here: judging them
(chain, purpose, revocation) at the time of use is the caller's, so one expired certificate does
not make the whole directory unusable; :func:`check_certificates` is the stricter judgement the
root operator's build applies.

The JSON form (canonical JSON, :mod:`exchange_protocol.canonical`; certificates base64 DER)::

    {"format": "gwx-directory/1", "network": "常德市电子政务外网", "version": 7,
     "issued_at": "…Z", "next_update": "…Z", "expires": "…Z",
     "nodes": [{"id", "urls": [...], "level", "parent": id|null,
                "certificates": {"tls", "signing", "encryption"}, "chain": [intermediates],
                "previous": [{"tls", "signing", "encryption"}]}],   # optional, see below
     "units": [{"code", "name", "level", "node", "parent": code|null, "supervisor": code|null}],
     "links": [[node, node]], "revocation": {"crl": [url], "ocsp": [url]},
     "transport_root": cert,   # optional: a 国密 network's P-256 root for node TLS (absent elsewhere)
     "supervision": {"grace_working_days", "calendar"}}   # optional, see below

A node that renewed its certificates while running (``gwx node renew``) keeps accepting the
previous ones for an overlap; ``previous`` lists those sets (under the same ``chain``) while it
lasts, so that whoever reads the directory accepts both. The key is left out when no node has one,
so a directory without renewals is byte for byte what this format always was (same signature, and
still readable by nodes older than ``previous``; a directory that carries it is refused by those
as an unknown field — upgrade the nodes before publishing one). The format name stays ``/1``.
``transport_root`` likewise: only a 国密 network's directory carries it, naming — under the SM2
signature — the root its node TLS certificates chain to (docs/architecture.md).

``supervision`` is the network's 督办 rules (grace in working days, holiday calendar;
:class:`~exchange_protocol.supervision.NetworkSupervision`), left out like ``previous`` when the
source sets none — the same bytes as before, and the same caveat for older nodes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding

from pki.certificates import NODE_ID_RE, node_id_of
from pki.errors import InvalidUnitCode, PkiError
from pki.trust import Purpose, TrustStore, verify_certificate
from pki.unit_code import validate_unit_code

from .canonical import canonical_json, load_json
from .envelope import format_time
from .errors import (
    DirectoryBadCertificate,
    DirectoryBadField,
    DirectoryBadUnitCode,
    DirectoryCycle,
    DirectoryDuplicate,
    DirectoryMalformed,
    DirectoryTooLarge,
    DirectoryUnknownReference,
)
from .supervision import NetworkSupervision

FORMAT = "gwx-directory/1"
# 163 nodes and 3,600 units (a city like 常德) make about 1.5 MB; room for a province.
MAX_DIRECTORY_BYTES = 32 * 1024 * 1024
LEVELS = ("central", "province", "city", "county", "township", "village")
# The Chinese names UNITS.toml, node.toml and the network source may use instead (one vocabulary).
LEVEL_ALIASES = {"中央": "central", "省级": "province", "市级": "city", "县级": "county", "乡级": "township",
                 "乡镇": "township", "村级": "village"}
ROLES = ("tls", "signing", "encryption")
_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$")
_MAX_NAME = 200
_SHA256 = SHA256()


class DirectoryStatus(enum.Enum):
    CURRENT = "current"  # before next_update
    DUE = "due"  # past next_update: a newer one should have come; still valid
    EXPIRED = "expired"  # past expiry: still used (routing never stops on it), the alarm is raised


@dataclass(frozen=True)
class CertificateSet:
    """A node's TLS, signing and encryption certificates replaced by a renewal, still in their overlap."""

    tls: x509.Certificate
    signing: x509.Certificate
    encryption: x509.Certificate

    def certificate(self, role: str) -> x509.Certificate:
        return {"tls": self.tls, "signing": self.signing, "encryption": self.encryption}[role]


@dataclass(frozen=True)
class NodeEntry:
    id: str
    urls: tuple[str, ...]
    level: str
    parent: str | None
    tls: x509.Certificate
    signing: x509.Certificate
    encryption: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()  # intermediates between these certificates and the root
    previous: tuple[CertificateSet, ...] = ()  # replaced by a renewal, accepted until their overlap ends

    def certificate(self, role: str) -> x509.Certificate:
        return {"tls": self.tls, "signing": self.signing, "encryption": self.encryption}[role]

    def certificates(self, role: str) -> tuple[x509.Certificate, ...]:
        """Every certificate of ``role`` the node answers to now: the current one, then the previous."""
        return (self.certificate(role), *(p.certificate(role) for p in self.previous))


@dataclass(frozen=True)
class UnitEntry:
    code: str
    name: str
    level: str
    node: str  # the hosting node
    parent: str | None = None  # the unit it belongs to (a village's township)
    supervisor: str | None = None  # the unit that supervises it (业务主管单位), when not its parent


@dataclass(frozen=True)
class Directory:
    network: str
    version: int
    issued_at: dt.datetime
    next_update: dt.datetime
    expires: dt.datetime
    nodes: tuple[NodeEntry, ...]
    units: tuple[UnitEntry, ...]
    links: tuple[tuple[str, str], ...] = ()  # direct links allowed besides the tree, each pair sorted
    crl_urls: tuple[str, ...] = ()
    ocsp_urls: tuple[str, ...] = ()
    transport_root: x509.Certificate | None = None  # a 国密 network's root for node TLS
    supervision: NetworkSupervision | None = None  # the network's 督办 rules; None: each node's own

    # ---- reading ----------------------------------------------------------------------------
    def node(self, node_id: str) -> NodeEntry | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def unit(self, code: str) -> UnitEntry | None:
        return next((u for u in self.units if u.code == code), None)

    def status(self, now: dt.datetime) -> DirectoryStatus:
        if now >= self.expires:
            return DirectoryStatus.EXPIRED
        if now >= self.next_update:
            return DirectoryStatus.DUE
        return DirectoryStatus.CURRENT

    # ---- the JSON form ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        value = {
            "format": FORMAT, "network": self.network, "version": self.version,
            "issued_at": format_time(self.issued_at), "next_update": format_time(self.next_update),
            "expires": format_time(self.expires),
            "nodes": [_node_json(n) for n in self.nodes],
            "units": [{"code": u.code, "name": u.name, "level": u.level, "node": u.node, "parent": u.parent,
                       "supervisor": u.supervisor} for u in self.units],
            "links": [list(pair) for pair in self.links],
            "revocation": {"crl": list(self.crl_urls), "ocsp": list(self.ocsp_urls)},
            # absent on other networks: their directories read (and sign) as before
            **({"transport_root": encode_certificate(self.transport_root)} if self.transport_root else {}),
        }
        if self.supervision is not None:  # absent when unset: a directory without it signs as before
            value["supervision"] = self.supervision.to_json()
        return value

    def canonical(self) -> bytes:
        """The bytes the directory signer signs."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, value: Any) -> Directory:
        """A directory from its parsed JSON form (untrusted), checked well formed."""
        r = _Reader(value, "$", ("format", "network", "version", "issued_at", "next_update", "expires",
                                 "nodes", "units"), ("links", "revocation", "transport_root", "supervision"))
        if r.str("format") != FORMAT:
            raise DirectoryBadField(f"format must be {FORMAT!r}", path="$.format")
        version = r.int("version")
        if version < 1:
            raise DirectoryBadField("version must be 1 or more", path="$.version")
        nodes = tuple(_node(item, f"$.nodes[{i}]") for i, item in enumerate(r.list("nodes")))
        units = tuple(_unit(item, f"$.units[{i}]") for i, item in enumerate(r.list("units")))
        links = tuple(_link(item, f"$.links[{i}]") for i, item in enumerate(r.list("links", [])))
        revocation = _Reader(r.get("revocation", {}), "$.revocation", (), ("crl", "ocsp"))
        directory = cls(r.name("network"), version, r.time("issued_at"), r.time("next_update"),
                        r.time("expires"), nodes, units, links,
                        revocation.urls("crl", at_least=0), revocation.urls("ocsp", at_least=0),
                        _certificate(r.get("transport_root"), "$.transport_root") if "transport_root" in value else None,
                        None if "supervision" not in value else NetworkSupervision.from_json(value["supervision"]))
        return check(directory)

    @classmethod
    def from_bytes(cls, data: bytes) -> Directory:
        """A directory from untrusted JSON bytes (size-bounded, strict: duplicate keys refused)."""
        if isinstance(data, (bytes, bytearray)) and len(data) > MAX_DIRECTORY_BYTES:
            raise DirectoryTooLarge(f"directory is {len(data)} bytes, more than the {MAX_DIRECTORY_BYTES} allowed",
                                    size=len(data), limit=MAX_DIRECTORY_BYTES)
        return cls.from_json(load_json(data, max_bytes=MAX_DIRECTORY_BYTES, what="directory",
                                       error=DirectoryMalformed))


def _node_json(n: NodeEntry) -> dict[str, Any]:
    value = {"id": n.id, "urls": list(n.urls), "level": n.level, "parent": n.parent,
             "certificates": _certificates_json(n), "chain": [encode_certificate(c) for c in n.chain]}
    if n.previous:  # absent when empty: a directory without renewals reads (and signs) as before
        value["previous"] = [_certificates_json(p) for p in n.previous]
    return value


def _certificates_json(holder: NodeEntry | CertificateSet) -> dict[str, str]:
    return {role: encode_certificate(holder.certificate(role)) for role in ROLES}


# ---- well-formedness ------------------------------------------------------------------------
def level_of(text: str) -> str | None:
    """The level ``text`` names (one of :data:`LEVELS`, or its Chinese name), or None if it names none."""
    level = LEVEL_ALIASES.get(text, text)
    return level if level in LEVELS else None


def check(directory: Directory) -> Directory:
    """Return ``directory`` if well formed, else raise the typed error naming the first fault."""
    if not directory.issued_at <= directory.next_update <= directory.expires:
        raise DirectoryBadField("times must come in order: issued_at ≤ next_update ≤ expires", path="$")
    if not directory.nodes:
        raise DirectoryBadField("a directory lists at least one node", path="$.nodes")
    nodes = _unique((n.id for n in directory.nodes), "node id")
    for i, n in enumerate(directory.nodes):
        # What from_json checked field by field, checked again for values built in code.
        if not NODE_ID_RE.match(n.id) or n.level not in LEVELS:
            raise DirectoryBadField(f"node {n.id!r} needs a node id and one of the levels {', '.join(LEVELS)}",
                                    path=f"$.nodes[{i}]")
        if n.parent is not None and n.parent not in nodes:
            raise DirectoryUnknownReference(f"node {n.id}'s parent {n.parent} is not in the directory",
                                            path=f"$.nodes[{i}].parent", node=n.id, parent=n.parent)
        for role in ROLES:
            for k, cert in enumerate(n.certificates(role)):
                named = node_id_of(cert)
                if named != n.id:
                    where = "certificates" if k == 0 else f"previous[{k - 1}]"
                    raise DirectoryBadCertificate(f"node {n.id}'s {'' if k == 0 else 'previous '}{role} certificate "
                                                  f"names node {named!r}", path=f"$.nodes[{i}].{where}.{role}",
                                                  node=n.id)
        current = {n.certificate(role).fingerprint(_SHA256) for role in ROLES}
        for k, previous in enumerate(n.previous):
            if current & {previous.certificate(role).fingerprint(_SHA256) for role in ROLES}:
                raise DirectoryDuplicate(f"node {n.id}'s previous certificates include a current one",
                                         path=f"$.nodes[{i}].previous[{k}]", node=n.id)
    roots = [n.id for n in directory.nodes if n.parent is None]
    if len(roots) != 1:
        raise DirectoryBadField(f"the node tree needs exactly one root (a node without parent), has {len(roots)}"
                                + (f": {', '.join(roots)}" if roots else ""), path="$.nodes", roots=roots)
    _no_cycle({n.id: n.parent for n in directory.nodes}, "node")
    codes = _unique((u.code for u in directory.units), "unit code")
    for i, u in enumerate(directory.units):
        if _code(u.code, f"$.units[{i}].code") != u.code or u.level not in LEVELS:
            raise DirectoryBadField(f"unit {u.code} must be written in capitals with one of the levels "
                                    f"{', '.join(LEVELS)}", path=f"$.units[{i}]")
        if u.node not in nodes:
            raise DirectoryUnknownReference(f"unit {u.code} ({u.name}) is hosted by node {u.node}, which the "
                                            "directory does not list", path=f"$.units[{i}].node",
                                            unit=u.code, node=u.node)
        for field in ("parent", "supervisor"):
            other = getattr(u, field)
            if other is not None and other not in codes:
                raise DirectoryUnknownReference(f"unit {u.code}'s {field} {other} is not in the directory",
                                                path=f"$.units[{i}].{field}", unit=u.code)
            if other == u.code:
                raise DirectoryCycle(f"unit {u.code} is its own {field}", path=f"$.units[{i}].{field}")
    _no_cycle({u.code: u.parent for u in directory.units}, "unit")
    seen: set[tuple[str, str]] = set()
    for i, (a, b) in enumerate(directory.links):
        for end in (a, b):
            if end not in nodes:
                raise DirectoryUnknownReference(f"link {a}–{b} names node {end}, which is not in the directory",
                                                path=f"$.links[{i}]")
        if (a, b) in seen:
            raise DirectoryDuplicate(f"link {a}–{b} is listed twice", path=f"$.links[{i}]")
        seen.add((a, b))
    return directory


def check_certificates(directory: Directory, trust: TrustStore, now: dt.datetime,
                       tls_trust: TrustStore | None = None) -> None:
    """The root operator's stricter check before signing: every node certificate valid now, for its
    role, under ``trust`` — TLS certificates under ``tls_trust`` when given (a 国密 network's transport
    root). (Receivers do not refuse a directory for this: see the module docstring.)"""
    purposes = {"tls": Purpose.TLS_SERVER, "signing": Purpose.SIGNING, "encryption": Purpose.ENCRYPTION}
    for n in directory.nodes:
        for role in ROLES:
            for k, cert in enumerate(n.certificates(role)):
                try:
                    verify_certificate(cert, tls_trust if role == "tls" and tls_trust else trust, now, n.chain,
                                       purposes[role])
                except PkiError as exc:
                    what = f"{role} certificate" if k == 0 else (
                        f"previous {role} certificate (drop it from the source once its overlap is over)")
                    raise DirectoryBadCertificate(f"node {n.id}'s {what}: {exc.message}", node=n.id,
                                                  role=role, previous=k > 0, cause=exc.code) from None


def _unique(values: Iterable[str], what: str) -> set[str]:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise DirectoryDuplicate(f"{what} {v} is listed twice", value=v)
        seen.add(v)
    return seen


def _no_cycle(parent_of: Mapping[str, str | None], what: str) -> None:
    done: set[str] = set()
    for start in parent_of:
        trail: list[str] = []
        current: str | None = start
        while current is not None and current not in done:
            if current in trail:
                loop = trail[trail.index(current):] + [current]
                raise DirectoryCycle(f"{what}s form a cycle: {' → '.join(loop)}", cycle=loop)
            trail.append(current)
            current = parent_of.get(current)
        done.update(trail)


# ---- reading untrusted JSON ---------------------------------------------------------------------
class _Reader:
    """Typed access to one JSON object: unknown keys, missing keys and wrong types are DIR_BAD_FIELD."""

    def __init__(self, value: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
        if not isinstance(value, dict):
            raise DirectoryBadField(f"{path} must be an object, not {_type(value)}", path=path)
        unknown = sorted(set(value) - set(required) - set(optional))
        if unknown:
            raise DirectoryBadField(f"{path} has unknown field(s): {', '.join(unknown)}", path=path, fields=unknown)
        missing = [k for k in required if k not in value]
        if missing:
            raise DirectoryBadField(f"{path} lacks {', '.join(missing)}", path=path, fields=missing)
        self.value, self.path = value, path

    def get(self, key: str, default: Any = None) -> Any:
        return self.value.get(key, default)

    def _typed(self, key: str, types: tuple[type, ...], name: str, default: Any = None) -> Any:
        value = self.value.get(key, default)
        # bool is an int to isinstance; a version of true is still the wrong type.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise DirectoryBadField(f"{self.path}.{key} must be {name}, not {_type(value)}", path=f"{self.path}.{key}")
        return value

    def str(self, key: str) -> str:
        return self._typed(key, (str,), "a string")

    def optional_str(self, key: str) -> str | None:
        return self._typed(key, (str, type(None)), "a string or null")

    def int(self, key: str) -> int:
        return self._typed(key, (int,), "an integer")

    def list(self, key: str, default: Any = None) -> list:
        return self._typed(key, (list,), "a list", default)

    def name(self, key: str) -> str:
        value = self.str(key)
        if not value.strip() or len(value) > _MAX_NAME:
            raise DirectoryBadField(f"{self.path}.{key} must be 1–{_MAX_NAME} characters", path=f"{self.path}.{key}")
        return value

    def level(self) -> str:
        value = self.str("level")
        if value not in LEVELS:
            raise DirectoryBadField(f"{self.path}.level {value!r} is not one of {', '.join(LEVELS)}",
                                    path=f"{self.path}.level")
        return value

    def time(self, key: str) -> dt.datetime:
        match = _TIME_RE.match(self.str(key))
        try:
            if match:
                return dt.datetime(*map(int, match.groups()), tzinfo=dt.UTC)
        except ValueError:
            pass
        raise DirectoryBadField(f"{self.path}.{key} must be a time like 2026-01-31T08:00:00Z",
                                path=f"{self.path}.{key}")

    def urls(self, key: str, at_least: int) -> tuple[str, ...]:
        urls = self.list(key, [])
        if len(urls) < at_least:
            raise DirectoryBadField(f"{self.path}.{key} needs at least {at_least} URL", path=f"{self.path}.{key}")
        for i, url in enumerate(urls):
            if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
                raise DirectoryBadField(f"{self.path}.{key}[{i}] must be an http(s) URL", path=f"{self.path}.{key}[{i}]")
        return tuple(urls)


def _node(value: Any, path: str) -> NodeEntry:
    r = _Reader(value, path, ("id", "urls", "level", "parent", "certificates"), ("chain", "previous"))
    node_id = r.str("id")
    if not NODE_ID_RE.match(node_id):
        raise DirectoryBadField(f"{path}.id {node_id!r} is not a node id (lower-case letters, digits, '.', '-')",
                                path=f"{path}.id")
    urls = r.urls("urls", at_least=1)
    for i, url in enumerate(urls):
        if not url.startswith("https://"):
            raise DirectoryBadField(f"{path}.urls[{i}]: a peer URL must be https", path=f"{path}.urls[{i}]")
    chain = tuple(_certificate(c, f"{path}.chain[{i}]") for i, c in enumerate(r.list("chain", [])))
    previous = tuple(CertificateSet(*_role_certificates(item, f"{path}.previous[{i}]"))
                     for i, item in enumerate(r.list("previous", [])))
    return NodeEntry(node_id, urls, r.level(), r.optional_str("parent"),
                     *_role_certificates(r.get("certificates"), f"{path}.certificates"), chain=chain,
                     previous=previous)


def _role_certificates(value: Any, path: str) -> list[x509.Certificate]:
    certs = _Reader(value, path, ROLES, ())
    return [_certificate(certs.get(role), f"{path}.{role}") for role in ROLES]


def _unit(value: Any, path: str) -> UnitEntry:
    r = _Reader(value, path, ("code", "name", "level", "node"), ("parent", "supervisor"))
    parent, supervisor = r.optional_str("parent"), r.optional_str("supervisor")
    return UnitEntry(_code(r.str("code"), f"{path}.code"), r.name("name"), r.level(), r.str("node"),
                     None if parent is None else _code(parent, f"{path}.parent"),
                     None if supervisor is None else _code(supervisor, f"{path}.supervisor"))


def _link(value: Any, path: str) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise DirectoryBadField(f"{path} must be a pair of node ids", path=path)
    if value[0] == value[1]:
        raise DirectoryBadField(f"{path} links node {value[0]} to itself", path=path)
    a, b = sorted(value)
    return a, b


def _code(text: str, path: str) -> str:
    try:
        return validate_unit_code(text)
    except InvalidUnitCode as exc:
        raise DirectoryBadUnitCode(f"{path}: {exc.message}", path=path, value=text) from None


def _certificate(value: Any, path: str) -> x509.Certificate:
    if not isinstance(value, str):
        raise DirectoryBadField(f"{path} must be a base64 DER certificate, not {_type(value)}", path=path)
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
        cert.subject.rfc4514_string()  # names decode lazily: a bad one fails here, not in a message later
        return cert
    except (binascii.Error, ValueError) as exc:
        raise DirectoryBadCertificate(f"{path} is not a certificate: {exc}", path=path) from None


def encode_certificate(cert: x509.Certificate) -> str:
    """A certificate as the directory writes it: base64 of its DER."""
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode("ascii")


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
