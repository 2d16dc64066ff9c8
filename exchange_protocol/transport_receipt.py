"""Signed transport receipts: the receiving node's proof that it received these exact bytes.

The receiver signs canonical JSON::

    {"envelope_sha256": "<hex SHA-256 of every frame byte received>", "message_id": "<UUIDv7>",
     "received_at": "YYYY-MM-DDTHH:MM:SSZ", "receiver": "<node id>", "status": "accepted|duplicate",
     "type": "gwx-transport-receipt", "v": 1}

on an international network, and ``envelope_sm3`` (the SM3 of the same bytes) in place of
``envelope_sha256`` on a 国密 one — the key names the network's digest (:mod:`exchange_protocol.digests`),
exactly one is present — with a detached CMS signature (:mod:`pki.cms`, its node signing key). On the wire, a receipt is the
canonical JSON object ``{"receipt": "<the signed JSON text>", "signature": "<base64 DER CMS>", "v": 1}``:
the signed bytes travel verbatim (as a string), so verification never depends on re-encoding, and
``openssl cms -verify -binary -content receipt.json`` checks the signature. A duplicate is answered
with the original receipt (see :mod:`exchange_protocol.replay`); ``duplicate`` exists for a receiver
that no longer holds it.

The sender verifies: signature, the signer's trust path (signing purpose), that the signer
certificate names the receiver node the receipt claims, and that message id, envelope digest and
receiver are the ones it sent to, the digest of the algorithm it expects (:class:`TransportReceiptMismatch`
otherwise).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import re
from dataclasses import dataclass

from cryptography import x509

from pki import cms
from pki.certificates import NODE_ID_RE, node_id_of
from pki.errors import CertificateInvalid, PkiError
from pki.signer import Signer
from pki.trust import Purpose, RevocationCheck, TrustStore

from . import digests
from .canonical import canonical_json, load_json
from .envelope import format_time, parse_time
from .errors import (
    EnvelopeHeaderInvalid,
    InvalidId,
    TransportReceiptBadSignature,
    TransportReceiptInvalid,
    TransportReceiptMismatch,
)
from .ids import parse_id

KIND = "gwx-transport-receipt"
MAX_RECEIPT_BYTES = 64 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_COMMON = {"message_id", "received_at", "receiver", "status", "type", "v"}
_FIELDS = {name: _COMMON | {f"envelope_{name}"} for name in digests.NAMES}


class ReceiptStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class TransportReceipt:
    message_id: str
    envelope_digest: str  # lower-case hex, of digest_algorithm, over every frame byte received
    received_at: dt.datetime
    receiver_node: str
    status: ReceiptStatus = ReceiptStatus.ACCEPTED
    digest_algorithm: str = digests.SHA256  # the network's: "sha256" | "sm3"

    def __post_init__(self) -> None:
        try:
            parse_id(self.message_id)
        except InvalidId:
            raise TransportReceiptInvalid("receipt message_id is not a message id") from None
        if self.digest_algorithm not in digests.NAMES:
            raise TransportReceiptInvalid(f"receipt digest {self.digest_algorithm!r} is not one of {digests.NAMES}")
        if not isinstance(self.envelope_digest, str) or not _HEX64.match(self.envelope_digest):
            raise TransportReceiptInvalid(f"{self.digest_field} must be 64 lower-case hex digits")
        if not isinstance(self.received_at, dt.datetime) or self.received_at.utcoffset() is None:
            raise TransportReceiptInvalid("received_at must be a timezone-aware datetime")
        object.__setattr__(self, "received_at", self.received_at.astimezone(dt.UTC).replace(microsecond=0))
        if not isinstance(self.receiver_node, str) or not NODE_ID_RE.match(self.receiver_node):
            raise TransportReceiptInvalid("receiver is not a node id")
        try:
            object.__setattr__(self, "status", ReceiptStatus(self.status))
        except ValueError:
            raise TransportReceiptInvalid(f"unknown receipt status {self.status!r}") from None

    @property
    def digest_field(self) -> str:
        """The JSON key of the frame digest: it names the algorithm."""
        return f"envelope_{self.digest_algorithm}"

    def encode(self) -> bytes:
        return canonical_json({"v": 1, "type": KIND, "message_id": self.message_id,
                               self.digest_field: self.envelope_digest,
                               "received_at": format_time(self.received_at),
                               "receiver": self.receiver_node, "status": self.status.value})


def sign_receipt(receipt: TransportReceipt, signer: Signer,
                 extra_certs: tuple[x509.Certificate, ...] = ()) -> bytes:
    """The wire form of ``receipt`` signed by the receiving node's signing key."""
    if signer.certificate is None or node_id_of(signer.certificate) != receipt.receiver_node:
        raise TransportReceiptInvalid("the signing certificate does not name the receiving node")
    body = receipt.encode()
    signature = cms.sign_detached(body, signer, extra_certs=extra_certs)
    return canonical_json({"v": 1, "receipt": body.decode("utf-8"),
                           "signature": base64.b64encode(signature).decode("ascii")})


@dataclass(frozen=True)
class VerifiedReceipt:
    receipt: TransportReceipt
    signed_bytes: bytes
    signature: bytes
    signer_certificate: x509.Certificate


def parse_receipt(wire: bytes) -> tuple[TransportReceipt, bytes, bytes]:
    """(receipt, signed bytes, CMS signature) from the wire form, strictly; no signature check."""
    outer = load_json(wire, max_bytes=MAX_RECEIPT_BYTES, what="transport receipt", error=TransportReceiptInvalid)
    if not isinstance(outer, dict) or set(outer) != {"v", "receipt", "signature"} or outer["v"] != 1 \
            or not isinstance(outer["receipt"], str) or not isinstance(outer["signature"], str):
        raise TransportReceiptInvalid("a transport receipt is {v: 1, receipt: text, signature: base64}")
    try:
        signature = base64.b64decode(outer["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise TransportReceiptInvalid("receipt signature is not base64") from None
    body = outer["receipt"].encode("utf-8")
    raw = load_json(body, max_bytes=MAX_RECEIPT_BYTES, what="receipt", error=TransportReceiptInvalid)
    algorithm = digests.SM3 if isinstance(raw, dict) and "envelope_sm3" in raw else digests.SHA256
    fields = _FIELDS[algorithm]
    if not isinstance(raw, dict) or set(raw) != fields or raw["v"] != 1 or raw["type"] != KIND:
        raise TransportReceiptInvalid("receipt fields are not those of a gwx transport receipt v1")
    if not all(isinstance(raw[k], str) for k in fields - {"v"}):
        raise TransportReceiptInvalid("receipt fields must be strings")
    try:
        received_at = parse_time("received_at", raw["received_at"])
    except EnvelopeHeaderInvalid as exc:
        raise TransportReceiptInvalid(exc.message) from None
    receipt = TransportReceipt(raw["message_id"], raw[f"envelope_{algorithm}"], received_at, raw["receiver"],
                               raw["status"], algorithm)
    if receipt.encode() != body:
        raise TransportReceiptInvalid("receipt is not in canonical form")
    return receipt, body, signature


def verify_receipt(wire: bytes, *, trust: TrustStore, now: dt.datetime, message_id: str,
                   envelope_digest: str, receiver_node: str, digest_algorithm: str = digests.SHA256,
                   intermediates: tuple[x509.Certificate, ...] = (),
                   revocation: RevocationCheck | None = None) -> VerifiedReceipt:
    """Check a receipt for the envelope we sent (typed errors): ``envelope_digest`` is the frame's
    ``digest_algorithm`` (the network's); return what it proves."""
    receipt, body, signature = parse_receipt(wire)
    try:
        result = cms.verify_detached(signature, body, trust_roots=trust, now=now, intermediates=intermediates,
                                     purpose=Purpose.SIGNING, revocation=revocation)
    except CertificateInvalid as exc:
        raise TransportReceiptBadSignature(f"receipt signer is not trusted: {exc.message}", cause=exc.code) from None
    except PkiError as exc:
        raise TransportReceiptBadSignature(f"receipt signature does not verify: {exc.message}",
                                           cause=exc.code) from None
    signer_node = node_id_of(result.signer_certificate)
    if signer_node != receipt.receiver_node:
        raise TransportReceiptBadSignature(f"receipt signed by node {signer_node!r} but names {receipt.receiver_node!r}")
    for name, got, want in (("message_id", receipt.message_id, message_id),
                            ("digest", receipt.digest_field, f"envelope_{digest_algorithm}"),
                            (receipt.digest_field, receipt.envelope_digest, envelope_digest),
                            ("receiver", receipt.receiver_node, receiver_node)):
        if got != want:
            raise TransportReceiptMismatch(f"receipt {name} is {got!r}, expected {want!r}", field=name)
    return VerifiedReceipt(receipt, body, signature, result.signer_certificate)
