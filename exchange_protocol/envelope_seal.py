"""Sealing (sign + encrypt) and opening (verify + decrypt) envelopes; sans-I/O.

Sealing order: encrypt the payload for the destination node (its digest and length are then known),
complete the header with them, sign the header bytes with the origin node's signing key (detached CMS
through :mod:`pki.cms`), frame. Streaming senders encrypt into a caller-provided spool file first,
because the frame puts the signed header — which carries the payload digest — before the payload.

Opening is a push pipeline (:class:`EnvelopeOpener`): the frame decoder yields the head; the head is
judged *before any payload byte is used*, cheapest checks first — header syntax, frame/header payload
length, destination is this node, not expired, hop count, then the CMS signature, the signer's trust
path (purpose signing, at ``now``, revocation injected) and that the signer certificate names the
header's origin node. Then payload bytes stream through SHA-256 and AES-GCM; ``close()`` raises
unless the frame is complete, the digest equals the signed one and the GCM tag verifies. Plaintext
handed out before ``close()`` returns is unauthenticated: write it to a temp file, rename on success.

A relay uses the same head checks without the destination and decryption (:class:`RelayCheck`).
Every failure is a typed :class:`~exchange_protocol.errors.EnvelopeError`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import BinaryIO

from cryptography import x509

from pki import cms
from pki.ca import node_id_of
from pki.errors import CertificateInvalid, PkiError, RevocationUnknown
from pki.signer import Signer
from pki.trust import Purpose, RevocationCheck, TrustStore

from .envelope import (
    EnvelopeHeader,
    FrameDecoder,
    FrameHead,
    FrameLimits,
    HeaderDraft,
    decode_header,
    encode_prefix,
)
from .envelope_crypto import DecryptionKey, PayloadDecryptor, Recipient, encrypt_bytes, encrypt_stream
from .errors import (
    EnvelopeBadSignature,
    EnvelopeExpired,
    EnvelopeInvalidField,
    EnvelopeMalformedFrame,
    EnvelopePayloadDigestMismatch,
    EnvelopeRevocationUnknown,
    EnvelopeSignerNotOrigin,
    EnvelopeSignerUntrusted,
    EnvelopeTooManyHops,
    EnvelopeWrongRecipient,
)

COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Sender:
    """The origin node's signing identity: its signer (certificate required) and intermediates."""

    node_id: str
    signer: Signer
    extra_certs: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        cert = self.signer.certificate
        if cert is None or node_id_of(cert) != self.node_id:
            raise EnvelopeSignerNotOrigin(f"the signing certificate does not name node {self.node_id!r}",
                                          node=self.node_id)

    def sign(self, header_bytes: bytes) -> bytes:
        return cms.sign_detached(header_bytes, self.signer, extra_certs=self.extra_certs)


@dataclass(frozen=True)
class SealedEnvelope:
    header: EnvelopeHeader
    data: bytes  # the whole frame


def _check_draft(draft: HeaderDraft, sender: Sender, recipient: Recipient) -> None:
    if draft.origin_node != sender.node_id:
        raise EnvelopeInvalidField("origin is not the signing node", field="origin")
    if node_id_of(recipient.certificate) != draft.destination_node:
        raise EnvelopeInvalidField("the encryption certificate is not the destination node's",
                                   field="destination")


def seal_envelope(draft: HeaderDraft, plaintext: bytes, sender: Sender, recipient: Recipient) -> SealedEnvelope:
    """Encrypt, sign and frame a payload held in memory (notices, receipts, small documents)."""
    _check_draft(draft, sender, recipient)
    payload = encrypt_bytes(plaintext, recipient)
    header = draft.complete(len(payload), hashlib.sha256(payload).digest())
    header_bytes = header.encode()
    prefix = encode_prefix(header_bytes, sender.sign(header_bytes), len(payload))
    return SealedEnvelope(header, prefix + payload)


def seal_stream(draft: HeaderDraft, src: BinaryIO, length: int, spool: BinaryIO, sender: Sender,
                recipient: Recipient) -> tuple[EnvelopeHeader, bytes]:
    """Encrypt ``length`` bytes from ``src`` into ``spool``; return the header and the frame prefix.

    The envelope is the prefix followed by the spool's bytes (see :func:`write_envelope`).
    """
    _check_draft(draft, sender, recipient)
    sealed = encrypt_stream(src, spool, length, recipient)
    header = draft.complete(sealed.length, sealed.sha256)
    header_bytes = header.encode()
    return header, encode_prefix(header_bytes, sender.sign(header_bytes), sealed.length)


def write_envelope(prefix: bytes, payload: BinaryIO, out: BinaryIO, chunk_size: int = COPY_CHUNK) -> str:
    """Write ``prefix`` then ``payload`` (read to its end) to ``out``; return the frame's SHA-256."""
    sha = hashlib.sha256(prefix)
    out.write(prefix)
    while chunk := payload.read(chunk_size):
        sha.update(chunk)
        out.write(chunk)
    return sha.hexdigest()


# ---- opening -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrustPolicy:
    """How this node judges signers: roots, extra intermediates, revocation check, limits."""

    trust: TrustStore
    intermediates: tuple[x509.Certificate, ...] = ()
    revocation: RevocationCheck | None = None
    limits: FrameLimits = field(default_factory=FrameLimits)
    max_hops: int = 16  # our own ceiling, whatever the origin allowed


@dataclass(frozen=True)
class VerifiedHead:
    header: EnvelopeHeader
    head: FrameHead
    signer_certificate: x509.Certificate
    identity_digest: str


def verify_head(head: FrameHead, policy: TrustPolicy, now: dt.datetime,
                destination: str | None) -> VerifiedHead:
    """Judge a frame head. ``destination`` is our node id, or None for a relay (any destination)."""
    header = decode_header(head.header_bytes, policy.limits.max_header)
    if header.payload_length != head.payload_length:
        raise EnvelopeMalformedFrame("frame and header disagree on the payload length",
                                     frame=head.payload_length, header=header.payload_length)
    if destination is not None and header.destination_node != destination:
        raise EnvelopeWrongRecipient(f"envelope is for node {header.destination_node}, not {destination}",
                                     destination=header.destination_node, me=destination)
    if header.expires < now:
        raise EnvelopeExpired(f"envelope {header.message_id} expired at {header.expires.isoformat()}",
                              message_id=header.message_id, expires=header.expires.isoformat())
    if head.hops > min(header.max_hops, policy.max_hops):
        raise EnvelopeTooManyHops(f"envelope has passed {head.hops} relays, more than allowed",
                                  hops=head.hops, max_hops=min(header.max_hops, policy.max_hops))
    try:
        result = cms.verify_detached(head.signature, head.header_bytes, trust_roots=policy.trust, now=now,
                                     intermediates=policy.intermediates, purpose=Purpose.SIGNING,
                                     revocation=policy.revocation)
    except RevocationUnknown as exc:  # our CRL is stale or missing: not the sender's fault, retry later
        raise EnvelopeRevocationUnknown(f"cannot check the header signer's revocation: {exc.message}",
                                        cause=exc.code) from None
    except CertificateInvalid as exc:
        raise EnvelopeSignerUntrusted(f"header signer is not trusted: {exc.message}", cause=exc.code) from None
    except PkiError as exc:
        raise EnvelopeBadSignature(f"header signature does not verify: {exc.message}", cause=exc.code) from None
    signer_node = node_id_of(result.signer_certificate)
    if signer_node != header.origin_node:
        raise EnvelopeSignerNotOrigin(f"header signed by node {signer_node!r}, origin says {header.origin_node!r}",
                                      signer=signer_node, origin=header.origin_node)
    return VerifiedHead(header, head, result.signer_certificate, head.identity_digest)


@dataclass(frozen=True)
class OpenedEnvelope:
    header: EnvelopeHeader
    signer_certificate: x509.Certificate
    envelope_sha256: str  # of every frame byte received: what the transport receipt binds
    identity_digest: str  # for duplicate detection (replay.classify_replay)
    hops: int
    plaintext_length: int


class _Pipeline:
    def __init__(self, policy: TrustPolicy, now: dt.datetime, destination: str | None) -> None:
        self._policy, self._now, self._destination = policy, now, destination
        self._frame = FrameDecoder(policy.limits)
        self._payload_sha = hashlib.sha256()
        self.verified: VerifiedHead | None = None

    def _payload(self, data: bytes) -> bytes:
        payload = self._frame.feed(data)
        if self.verified is None and self._frame.head is not None:
            self.verified = verify_head(self._frame.head, self._policy, self._now, self._destination)
        if payload:
            self._payload_sha.update(payload)
        return payload

    def _close(self) -> str:
        envelope_sha = self._frame.close()
        assert self.verified is not None  # a complete frame has a verified head
        if self._payload_sha.hexdigest() != self.verified.header.payload_sha256:
            raise EnvelopePayloadDigestMismatch("payload bytes differ from the digest the origin signed",
                                                message_id=self.verified.header.message_id)
        return envelope_sha


class EnvelopeOpener(_Pipeline):
    """Receive one envelope for this node: ``feed(bytes) -> plaintext``, then ``close()``."""

    def __init__(self, policy: TrustPolicy, key: DecryptionKey, my_node: str, now: dt.datetime) -> None:
        super().__init__(policy, now, my_node)
        self._key = key
        self._decryptor: PayloadDecryptor | None = None

    def feed(self, data: bytes) -> bytes:
        payload = self._payload(data)
        if not payload:
            return b""
        if self._decryptor is None:
            self._decryptor = PayloadDecryptor(self._key, expected_length=self.verified.head.payload_length)
        return self._decryptor.update(payload)

    def close(self) -> OpenedEnvelope:
        envelope_sha = self._close()
        if self._decryptor is None:  # an empty payload cannot be a valid CMS structure
            self._decryptor = PayloadDecryptor(self._key, expected_length=0)
        self._decryptor.finalize()
        v = self.verified
        return OpenedEnvelope(v.header, v.signer_certificate, envelope_sha, v.identity_digest, v.head.hops,
                              self._decryptor.plaintext_length)


class RelayCheck(_Pipeline):
    """What a relay checks while storing an envelope it cannot read: ``feed`` returns payload bytes."""

    def __init__(self, policy: TrustPolicy, now: dt.datetime) -> None:
        super().__init__(policy, now, None)

    def feed(self, data: bytes) -> bytes:
        return self._payload(data)

    def close(self) -> tuple[VerifiedHead, str]:
        """(verified head, SHA-256 of the frame received). Forward ``head.prefix(hops + 1)`` + payload."""
        envelope_sha = self._close()
        head = self.verified
        if head.head.hops + 1 > min(head.header.max_hops, self._policy.max_hops):
            raise EnvelopeTooManyHops("forwarding would exceed the hop limit", hops=head.head.hops + 1)
        return head, envelope_sha


def open_envelope(src: BinaryIO, dst: BinaryIO, policy: TrustPolicy, key: DecryptionKey, my_node: str,
                  now: dt.datetime, chunk_size: int = COPY_CHUNK) -> OpenedEnvelope:
    """Read one envelope from ``src`` to its end, writing plaintext to ``dst`` (discard it on error)."""
    opener = EnvelopeOpener(policy, key, my_node, now)
    while chunk := src.read(chunk_size):
        dst.write(opener.feed(chunk))
    return opener.close()


def open_envelope_bytes(data: bytes, policy: TrustPolicy, key: DecryptionKey, my_node: str,
                        now: dt.datetime) -> tuple[OpenedEnvelope, bytes]:
    opener = EnvelopeOpener(policy, key, my_node, now)
    plaintext = opener.feed(data)
    return opener.close(), plaintext
