"""签收 and 退回 as evidence a third party can check offline: a statement signed by the unit's seal key.

When a clerk signs for (签收) or returns (退回) a document, the receiving node writes a
**statement** and signs it with the unit's seal key (the key of the unit's seal certificate,
``pki.seal_store``; on a token through PKCS#11): a CMS SignedData (RFC 5652, DER) with the
statement as attached ``id-data`` content, the signer identified by issuer and serial, the seal
certificate and the CAs between it and the root in ``certificates``, signed attributes contentType,
signingTime (= ``at``), messageDigest and ESS signingCertificateV2. Anyone holding the network's root
certificate checks it, without our database or our code: ``openssl cms -verify -inform DER -in
S.cms -CAfile root.crt`` prints the statement.

The statement is canonical JSON (``canonical.canonical_json``; every key always present)::

    v               1
    kind            "gwx-notice-statement"
    type            receipt (签收) | return (退回)
    doc_id          the 公文标识
    package_sha256  SHA-256 (hex) of the sealed package as it travelled: binds the statement to those bytes;
                    a statement signed with an SM2 seal key (a 国密 network) has ``package_sm3`` instead,
                    the SM3 of those bytes (the key names the digest, exactly one is present:
                    :mod:`exchange_protocol.digests`)
    unit            the 统一社会信用代码 of the unit that acted (the seal certificate must name it)
    unit_name       that unit's name, as its seal certificate says it
    by              the person who acted (签收人 / 退回人)
    at              when, UTC ``YYYY-MM-DDTHH:MM:SSZ`` (the notice's time)
    reason          the 退回 reason; null for a 签收
    sender_unit     the unit the document came from (the issuer; for a 转发, the forwarding unit)

Why the seal key and not the node's signing key: the node's key says "this node" — a third party
would have to trust the node operator's word about which unit acted. The seal key is the unit's
own, certified with its name and code by the CA. A node hosting a unit without a seal cannot
send anything for it anyway (``NODE_NO_SEAL``); the same refusal applies here, and no statement
is ever signed with another key.

:func:`verify_statement` checks the CMS (structure, digest, signature, the ESS certificate hash),
the signer certificate's path to the trust roots at ``now`` with the seal key usage (and
revocation when a checker is given), the content's strict shape, and that the certificate names
the statement's unit, and that the package digest is the seal key's (SM3 for an SM2 seal, SHA-256
otherwise: :func:`digest_for`). :func:`check_statement` then compares it with what the verifier expects (the
notice it came with, the package it sent). Every failure is a :class:`StatementError` with a
stable code; a stale CRL stays the transient :class:`pki.errors.RevocationUnknown` (a fresh CRL
settles it, the statement is not at fault).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from pki import cms
from pki.algorithms import SignatureAlgorithm, for_public_key
from pki.certificates import unit_code_of
from pki.errors import (
    CertificateInvalid,
    ErrorKind,
    InvalidInput,
    InvalidUnitCode,
    PkiError,
    RevocationUnknown,
    UnsupportedAlgorithm,
)
from pki.signer import Signer
from pki.trust import Purpose, RevocationCheck, TrustStore
from pki.unit_code import validate_unit_code
from pki.x509_sm2 import public_key_of

from . import digests
from .canonical import canonical_json, load_json
from .envelope import MessageType, format_time
from .errors import ProtocolError
from .model import check_doc_id

KIND = "gwx-notice-statement"
MAX_STATEMENT_BYTES = 32 * 1024  # a statement with a seal certificate and two CAs is ~2 KB
MAX_TEXT = 2000
DATA_OID = "1.2.840.113549.1.7.1"  # id-data: what openssl cms -verify prints as the content
# Plain data in either vocabulary: id-data, or GB/T 35275's data, which an SM2 seal key writes (pki.cms).
DATA_OIDS = frozenset({DATA_OID, cms.GBT_DATA})
STATEMENT_TYPES = (MessageType.RECEIPT, MessageType.RETURN)
_COMMON = frozenset({"v", "kind", "type", "doc_id", "unit", "unit_name", "by", "at", "reason", "sender_unit"})
_FIELDS = {f"package_{name}": _COMMON | {f"package_{name}"} for name in digests.NAMES}  # by the digest key
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# A statement's time, exactly as format_time writes it (the canonical form; anything else is refused).
_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


class StatementError(ProtocolError):
    """A 签收/退回 statement that proves nothing: malformed, badly signed, untrusted, or not about this."""

    code = "STATEMENT_INVALID"
    kind = ErrorKind.VERIFICATION_FAILED
    subcodes = ("STATEMENT_BAD_SIGNATURE", "STATEMENT_UNTRUSTED", "STATEMENT_WRONG_SIGNER", "STATEMENT_MISMATCH",
                "STATEMENT_TOO_LARGE")


@dataclass(frozen=True)
class Statement:
    type: MessageType
    doc_id: str
    package_digest: str  # hex, of digest_algorithm
    unit: str
    unit_name: str
    by: str
    at: dt.datetime
    reason: str | None
    sender_unit: str
    digest_algorithm: str = digests.SHA256  # the package digest's: SM3 in a statement an SM2 seal signs

    @property
    def digest_field(self) -> str:
        """The key that holds the package digest: ``package_sha256`` or ``package_sm3``."""
        return f"package_{self.digest_algorithm}"

    def __post_init__(self) -> None:
        if self.type not in STATEMENT_TYPES:
            raise StatementError(f"a statement is a 签收 or a 退回, not a {getattr(self.type, 'value', self.type)}")
        try:
            check_doc_id(self.doc_id, "doc_id")
            validate_unit_code(self.unit)
            validate_unit_code(self.sender_unit)
        except (ProtocolError, InvalidUnitCode) as exc:
            raise StatementError(f"statement: {exc.message}") from None
        if self.digest_algorithm not in digests.NAMES:
            raise StatementError(f"a statement's package digest is one of {digests.NAMES}, not "
                                 f"{self.digest_algorithm!r}")
        if not isinstance(self.package_digest, str) or not _HEX64.match(self.package_digest):
            raise StatementError(f"statement {self.digest_field} must be 64 lower-case hex digits")
        for name in ("unit_name", "by"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
                raise StatementError(f"statement {name} must be 1–{MAX_TEXT} characters")
        if self.type is MessageType.RETURN:
            if not isinstance(self.reason, str) or not self.reason.strip() or len(self.reason) > MAX_TEXT:
                raise StatementError(f"a 退回 statement needs a reason of 1–{MAX_TEXT} characters")
        elif self.reason is not None:
            raise StatementError("a 签收 statement has no reason")
        if not isinstance(self.at, dt.datetime) or self.at.tzinfo is None:
            raise StatementError("statement time must be timezone-aware")
        object.__setattr__(self, "at", self.at.astimezone(dt.UTC).replace(microsecond=0))

    def encode(self) -> bytes:
        return canonical_json({"v": 1, "kind": KIND, "type": self.type.value, "doc_id": self.doc_id,
                               self.digest_field: self.package_digest, "unit": self.unit, "unit_name": self.unit_name,
                               "by": self.by, "at": format_time(self.at), "reason": self.reason,
                               "sender_unit": self.sender_unit})


def decode_statement(content: bytes) -> Statement:
    """A :class:`Statement` from the signed content, strictly (canonical form, exact keys)."""
    raw = load_json(content, max_bytes=MAX_STATEMENT_BYTES, what="statement", error=StatementError)
    key = next((k for k in _FIELDS if isinstance(raw, dict) and k in raw), None)
    if key is None or set(raw) != _FIELDS[key] or raw["v"] != 1 or raw["kind"] != KIND:
        raise StatementError("the signed content is not a gwx 签收/退回 statement, version 1")
    if not all(isinstance(raw[k], str) for k in _FIELDS[key] - {"v", "reason"}) \
            or not (raw["reason"] is None or isinstance(raw["reason"], str)):
        raise StatementError("statement fields must be strings (reason: a string or null)")
    try:
        kind = MessageType(raw["type"])
        if not _AT.fullmatch(raw["at"]):  # strptime's locale machinery was 5 % of a statement's check
            raise ValueError(raw["at"])
        at = dt.datetime.fromisoformat(raw["at"][:-1]).replace(tzinfo=dt.UTC)
    except ValueError:
        raise StatementError(f"statement type {raw['type']!r} or time {raw['at']!r} is not valid") from None
    statement = Statement(kind, raw["doc_id"], raw[key], raw["unit"], raw["unit_name"], raw["by"], at,
                          raw["reason"], raw["sender_unit"], key.removeprefix("package_"))
    if statement.encode() != content:
        raise StatementError("the statement is not in canonical form")
    return statement


@functools.lru_cache(maxsize=4096)
def unit_name_of(certificate: x509.Certificate) -> str | None:
    """The unit name a seal certificate certifies (subject organizationName). Remembered per
    certificate (they compare by their DER): pyca decodes the whole subject on every ``.subject``,
    and a 签收 asks twice (the statement made, then checked before it is signed) — 1.5 % of a
    54-node process's GIL time in bench/network.py."""
    attrs = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(attrs[0].value) if attrs else None


def digest_for(algorithm: SignatureAlgorithm) -> str:
    """The package digest of a statement signed with ``algorithm``: SM3 for an SM2 seal key (a 国密
    network's), SHA-256 for any other — the signature's own hash, as the package manifest's."""
    return digests.SM3 if algorithm.key_type == "sm2" else digests.SHA256


def sign_statement(statement: Statement, signer: Signer, chain: tuple[x509.Certificate, ...] = ()) -> bytes:
    """The statement as CMS SignedData (DER, content attached) signed with the unit's seal key.
    ``chain``: the CAs between the seal certificate and the root (a verifier then needs the root alone)."""
    if signer.certificate is None or unit_code_of(signer.certificate) != statement.unit \
            or unit_name_of(signer.certificate) != statement.unit_name:
        raise StatementError(f"the signing certificate is not the seal certificate of unit {statement.unit} "
                             f"{statement.unit_name}", code="STATEMENT_WRONG_SIGNER", unit=statement.unit,
                             unit_name=statement.unit_name)
    if statement.digest_algorithm != digest_for(signer.algorithm):
        raise StatementError(f"a statement signed with {signer.algorithm.name} names its package by "
                             f"{digest_for(signer.algorithm)}, not {statement.digest_algorithm}",
                             field=statement.digest_field)
    return cms.sign_detached(statement.encode(), signer, encapsulate=True, signing_time=statement.at,
                             extra_certs=chain)


@dataclass(frozen=True)
class VerifiedStatement:
    statement: Statement
    der: bytes
    signer_certificate: x509.Certificate

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()


def verify_statement(der: bytes, trust: TrustStore, *, now: dt.datetime,
                     intermediates: tuple[x509.Certificate, ...] = (),
                     revocation: RevocationCheck | None = None) -> VerifiedStatement:
    """Check a statement offline: signature, the seal certificate's path to ``trust`` at ``now``
    (and its revocation with ``revocation``), the content, the certificate naming the unit."""
    if not isinstance(der, bytes) or len(der) > MAX_STATEMENT_BYTES:
        raise StatementError(f"a statement is at most {MAX_STATEMENT_BYTES} bytes of DER", code="STATEMENT_TOO_LARGE")
    try:
        result = cms.verify_detached(der, trust_roots=trust, now=now, intermediates=intermediates,
                                     purpose=Purpose.SEAL, revocation=revocation, require_signing_cert_v2=True)
    except RevocationUnknown:
        raise  # our CRL is stale: a fresh one settles it (transient), the statement is not at fault
    except CertificateInvalid as exc:
        raise StatementError(f"the statement's signer is not trusted: {exc.message}", code="STATEMENT_UNTRUSTED",
                             cause=exc.code) from None
    except (PkiError, InvalidInput) as exc:
        raise StatementError(f"the statement's signature does not verify: {exc.message}",
                             code="STATEMENT_BAD_SIGNATURE", cause=exc.code) from None
    if result.content is None or result.content_type not in DATA_OIDS:
        raise StatementError("a statement carries its content (id-data) inside the signature")
    statement = decode_statement(result.content)
    signer_unit = unit_code_of(result.signer_certificate)
    if signer_unit != statement.unit:
        raise StatementError(f"the statement speaks for unit {statement.unit} but is signed with the seal of "
                             f"{signer_unit or 'no unit'}", code="STATEMENT_WRONG_SIGNER", unit=statement.unit,
                             signer_unit=signer_unit)
    try:
        wanted = digest_for(for_public_key(public_key_of(result.signer_certificate)))
    except UnsupportedAlgorithm as exc:
        raise StatementError(f"the statement's seal key is not one gwx verifies: {exc.message}",
                             code="STATEMENT_BAD_SIGNATURE", cause=exc.code) from None
    if statement.digest_algorithm != wanted:  # one network, one profile: the seal key's digest, not the other's
        raise StatementError(f"the statement names its package by {statement.digest_algorithm}, but its seal key's "
                             f"digest is {wanted}", field=statement.digest_field, digest=wanted)
    signer_name = unit_name_of(result.signer_certificate)
    if signer_name != statement.unit_name:  # shown to whoever checks it: the certificate's word, not the signer's
        raise StatementError(f"the statement names unit {statement.unit} {statement.unit_name!r}, its seal "
                             f"certificate {signer_name!r}", code="STATEMENT_WRONG_SIGNER",
                             unit=statement.unit, unit_name=statement.unit_name, certificate_name=signer_name)
    return VerifiedStatement(statement, der, result.signer_certificate)


def check_statement(statement: Statement, *, type: MessageType, doc_id: str, unit: str, by: str | None,
                    at: dt.datetime, reason: str | None, package_digest: str, sender_unit: str,
                    digest_algorithm: str = digests.SHA256) -> None:
    """The statement says what the notice it came with says, about the package the sender sent
    (``package_digest``: that package's ``digest_algorithm``, the network's)."""
    expected = {"type": type, "doc_id": doc_id, "unit": unit, "by": by, "at": at.astimezone(dt.UTC).replace(microsecond=0),
                "reason": reason, "digest_algorithm": digest_algorithm, "package_digest": package_digest,
                "sender_unit": sender_unit}
    for name, want in expected.items():
        got = getattr(statement, name)
        if got != want:
            shown = getattr(got, "value", got)
            field = statement.digest_field if name in ("digest_algorithm", "package_digest") else name
            raise StatementError(f"the statement's {field} is {shown!s:.80}, not what it should say",
                                 code="STATEMENT_MISMATCH", field=field)
