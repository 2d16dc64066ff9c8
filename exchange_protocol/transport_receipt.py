"""Signed transport receipts: the receiving node's proof that it received these exact bytes.

The receiver signs canonical JSON::

    {"envelope_sha256": "<hex SHA-256 of every frame byte received>", "message_id": "<UUIDv7>",
     "received_at": "YYYY-MM-DDTHH:MM:SSZ", "receiver": "<node id>", "status": "accepted|duplicate",
     "type": "gwx-transport-receipt", "v": 1}

with a detached CMS signature (:mod:`pki.cms`, its node signing key). On the wire, a receipt is the
canonical JSON object ``{"receipt": "<the signed JSON text>", "signature": "<base64 DER CMS>", "v": 1}``:
the signed bytes travel verbatim (as a string), so verification never depends on re-encoding, and
``openssl cms -verify -binary -content receipt.json`` checks the signature. A duplicate is answered
with the original receipt (see :mod:`exchange_protocol.replay`); ``duplicate`` exists for a receiver
that no longer holds it.

The sender verifies: signature, the signer's trust path (signing purpose), that the signer
certificate names the receiver node the receipt claims, and that message id, envelope digest and
receiver are the ones it sent to (:class:`TransportReceiptMismatch` otherwise).
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
from pki.ca import NODE_ID_RE, node_id_of
from pki.errors import CertificateInvalid, PkiError
from pki.signer import Signer
from pki.trust import Purpose, RevocationCheck, TrustStore

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
_FIELDS = {"envelope_sha256", "message_id", "received_at", "receiver", "status", "type", "v"}


class ReceiptStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class TransportReceipt:
    message_id: str
    envelope_sha256: str
    received_at: dt.datetime
    receiver_node: str
    status: ReceiptStatus = ReceiptStatus.ACCEPTED

    def __post_init__(self) -> None:
        try:
            parse_id(self.message_id)
        except InvalidId:
            raise TransportReceiptInvalid("receipt message_id is not a message id") from None
        if not isinstance(self.envelope_sha256, str) or not _HEX64.match(self.envelope_sha256):
            raise TransportReceiptInvalid("envelope_sha256 must be 64 lower-case hex digits")
        if not isinstance(self.received_at, dt.datetime) or self.received_at.utcoffset() is None:
            raise TransportReceiptInvalid("received_at must be a timezone-aware datetime")
        object.__setattr__(self, "received_at", self.received_at.astimezone(dt.UTC).replace(microsecond=0))
        if not isinstance(self.receiver_node, str) or not NODE_ID_RE.match(self.receiver_node):
            raise TransportReceiptInvalid("receiver is not a node id")
        try:
            object.__setattr__(self, "status", ReceiptStatus(self.status))
        except ValueError:
            raise TransportReceiptInvalid(f"unknown receipt status {self.status!r}") from None

    def encode(self) -> bytes:
        return canonical_json({"v": 1, "type": KIND, "message_id": self.message_id,
                               "envelope_sha256": self.envelope_sha256,
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
    if not isinstance(raw, dict) or set(raw) != _FIELDS or raw["v"] != 1 or raw["type"] != KIND:
        raise TransportReceiptInvalid("receipt fields are not those of a gwx transport receipt v1")
    if not all(isinstance(raw[k], str) for k in _FIELDS - {"v"}):
        raise TransportReceiptInvalid("receipt fields must be strings")
    try:
        received_at = parse_time("received_at", raw["received_at"])
    except EnvelopeHeaderInvalid as exc:
        raise TransportReceiptInvalid(exc.message) from None
    receipt = TransportReceipt(raw["message_id"], raw["envelope_sha256"], received_at, raw["receiver"],
                               raw["status"])
    if receipt.encode() != body:
        raise TransportReceiptInvalid("receipt is not in canonical form")
    return receipt, body, signature


def verify_receipt(wire: bytes, *, trust: TrustStore, now: dt.datetime, message_id: str,
                   envelope_sha256: str, receiver_node: str,
                   intermediates: tuple[x509.Certificate, ...] = (),
                   revocation: RevocationCheck | None = None) -> VerifiedReceipt:
    """Check a receipt for the envelope we sent (typed errors); return what it proves."""
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
                            ("envelope_sha256", receipt.envelope_sha256, envelope_sha256),
                            ("receiver", receipt.receiver_node, receiver_node)):
        if got != want:
            raise TransportReceiptMismatch(f"receipt {name} is {got!r}, expected {want!r}", field=name)
    return VerifiedReceipt(receipt, body, signature, result.signer_certificate)
