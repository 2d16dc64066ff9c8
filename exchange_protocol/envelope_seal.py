"""Sealing (sign + encrypt) and opening (verify + decrypt) envelopes and bundles; sans-I/O.

Sealing order: encrypt the payload once for every destination node (its digest and length are then
known), complete each destination's header with them, sign each header with the origin node's
signing key (detached CMS through :mod:`pki.cms`), frame. One draft gives the ordinary envelope
(:func:`seal_envelope`, :func:`seal_stream`); several give a bundle (:func:`seal_bundle`,
:func:`seal_bundle_stream`): one payload, one signed header per destination node. Streaming senders
encrypt into a caller-provided spool file first, because the frame puts the signed headers — which
carry the payload digest — before the payload.

Opening is a push pipeline. The frame decoder yields the head; *every* header in it is judged
before any payload byte is used (:func:`verify_head`), cheapest checks first — header syntax, the
rules between a bundle's headers and the frame's payload length, that one header is for this node
(when opening), not expired, hop count, then each CMS signature, its signer's trust path (purpose
signing, at ``now``, revocation injected) and that the signer certificate names the header's origin
node. One bad header refuses the whole frame: its origin made all of them. Then payload bytes stream
through the network's digest (SHA-256, SM3 on a 国密 network: :mod:`exchange_protocol.digests`) and
the content cipher; ``close()`` raises unless the frame is complete, the digest equals the signed one and (when decrypting) the GCM tag verifies. Plaintext handed out before ``close()``
returns is unauthenticated: write it to a temp file, rename on success.

- :class:`EnvelopeOpener` — this node is the destination of one of the headers: decrypts, and
  :class:`OpenedEnvelope` gives that header and (``verified``) every header of the frame, so a node
  that also relays the others forwards them from there without judging them twice.
- :class:`RelayCheck` — a relay (no key, no decryption): the same head checks, any destinations.
- :meth:`VerifiedHead.subset_prefix` — the bytes before the payload for the headers of some
  destinations, hop count given: a relay writes it and then the same payload bytes, one frame per
  next hop, without re-encrypting or re-signing.

One network, one profile (:func:`pki.algorithms.takes_key`): on a 国密 network the headers are signed
SM2/SM3 (GB/T 35275 CMS) and the payload is SM4-GCM with SM2 key transport; on an international one
ECDSA P-256 and AES-256-GCM. Sealing for a destination of the other profile than the origin's signing
key, and a header signed with the other profile's key than the policy's roots (a P-256 envelope on a
国密 network, or the reverse), are ``PKI_PROFILE_MISMATCH`` — before any chain is built; so is a header
whose payload digest is the other profile's (``payload_sha256`` on a 国密 network, ``payload_sm3`` on
an international one). The frame digest a transport receipt binds and the replay identity are the
network's digest too.

Every failure is a typed :class:`~exchange_protocol.errors.EnvelopeError`, but for ``PKI_PROFILE_MISMATCH``
(:class:`pki.errors.UnsupportedAlgorithm`, the one class of that code).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from cryptography import x509

from pki import cms
from pki.algorithms import SM2_SM3
from pki.certificates import node_id_of
from pki.errors import CertificateInvalid, PkiError, RevocationUnknown
from pki.signer import Signer
from pki.sm2 import Sm2PublicKey
from pki.trust import Purpose, RevocationCheck, TrustStore
from pki.x509_sm2 import public_key_of

from . import digests
from .envelope import EnvelopeHeader, HeaderDraft, check_bundle, decode_header
from .envelope_ciphers import INTERNATIONAL, SM, mismatch, profile_of_kind
from .envelope_crypto import DecryptionKeys, PayloadDecryptor, Recipient, encrypt_bytes, encrypt_stream
from .errors import (
    EnvelopeBadSignature,
    EnvelopeExpired,
    EnvelopeInvalidField,
    EnvelopeMalformedFrame,
    EnvelopePayloadDigestMismatch,
    EnvelopeRevocationUnknown,
    EnvelopeSignerNotOrigin,
    EnvelopeSignerUntrusted,
    EnvelopeTooManyHeaders,
    EnvelopeTooManyHops,
    EnvelopeWrongRecipient,
)
from .frame import FrameDecoder, FrameHead, FrameLimits, SignedHeader, encode_prefix

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

    @property
    def profile(self) -> str:
        """The network profile of the origin's signing key: what its destinations must be of too."""
        return SM if self.signer.algorithm is SM2_SM3 else INTERNATIONAL

    @property
    def digest(self) -> str:
        """The protocol's digest on the origin's network (:mod:`exchange_protocol.digests`)."""
        return digests.for_profile(self.profile)


@dataclass(frozen=True)
class SealedEnvelope:
    header: EnvelopeHeader
    data: bytes  # the whole frame


@dataclass(frozen=True)
class SealedBundle:
    headers: tuple[EnvelopeHeader, ...]  # in the order of the drafts
    data: bytes  # the whole frame


def _check_drafts(drafts: Sequence[HeaderDraft], sender: Sender, recipients: Sequence[Recipient],
                  limits: FrameLimits) -> None:
    if not drafts or len(drafts) != len(recipients):
        raise EnvelopeInvalidField(f"{len(drafts)} drafts and {len(recipients)} recipients: one recipient per draft",
                                   field="destination")
    if len(drafts) > limits.max_headers:
        raise EnvelopeTooManyHeaders(f"{len(drafts)} destinations exceed the {limits.max_headers} a reader accepts "
                                     "in one frame", size=len(drafts), limit=limits.max_headers)
    check_bundle(drafts)
    for draft, recipient in zip(drafts, recipients, strict=True):
        if profile_of_kind(recipient.kind) != sender.profile:
            raise mismatch(f"node {sender.node_id} signs on a {sender.profile} network and destination "
                           f"{draft.destination_node}'s encryption certificate is of a "
                           f"{profile_of_kind(recipient.kind)} one", destination=draft.destination_node)
        if draft.origin_node != sender.node_id:
            raise EnvelopeInvalidField("origin is not the signing node", field="origin")
        if node_id_of(recipient.certificate) != draft.destination_node:
            raise EnvelopeInvalidField(f"the encryption certificate is not destination {draft.destination_node}'s",
                                       field="destination")


def _sign(drafts: Sequence[HeaderDraft], sender: Sender, length: int,
          digest: bytes) -> tuple[tuple[EnvelopeHeader, ...], bytes]:
    """Complete and sign every header for the payload of ``length`` and ``digest`` (the network's);
    (headers, prefix)."""
    headers = tuple(d.complete(length, digest, sender.digest) for d in drafts)
    signed = []
    for header in headers:
        header_bytes = header.encode()
        signed.append(SignedHeader(header_bytes, sender.sign(header_bytes)))
    return headers, encode_prefix(signed, length)


def seal_bundle(drafts: Sequence[HeaderDraft], plaintext: bytes, sender: Sender, recipients: Sequence[Recipient],
                limits: FrameLimits = FrameLimits()) -> SealedBundle:
    """One payload held in memory, encrypted once for every draft's destination (``recipients[i]``
    is ``drafts[i]``'s destination node's encryption certificate), one signed header per draft."""
    _check_drafts(drafts, sender, recipients, limits)
    payload = encrypt_bytes(plaintext, recipients)
    headers, prefix = _sign(drafts, sender, len(payload), digests.new(sender.digest, payload).digest())
    return SealedBundle(headers, prefix + payload)


def seal_bundle_stream(drafts: Sequence[HeaderDraft], src: BinaryIO, length: int, spool: BinaryIO, sender: Sender,
                       recipients: Sequence[Recipient],
                       limits: FrameLimits = FrameLimits()) -> tuple[tuple[EnvelopeHeader, ...], bytes]:
    """Encrypt ``length`` bytes from ``src`` into ``spool`` once for every draft's destination;
    return the signed headers and the frame prefix. The frame is the prefix followed by the
    spool's bytes (see :func:`write_envelope`); memory stays at one chunk plus the heads."""
    _check_drafts(drafts, sender, recipients, limits)
    sealed = encrypt_stream(src, spool, length, recipients)
    return _sign(drafts, sender, sealed.length, sealed.digest)


def seal_envelope(draft: HeaderDraft, plaintext: bytes, sender: Sender, recipient: Recipient) -> SealedEnvelope:
    """Encrypt, sign and frame a payload held in memory for one destination (notices, receipts, small documents)."""
    sealed = seal_bundle([draft], plaintext, sender, [recipient])
    return SealedEnvelope(sealed.headers[0], sealed.data)


def seal_stream(draft: HeaderDraft, src: BinaryIO, length: int, spool: BinaryIO, sender: Sender,
                recipient: Recipient) -> tuple[EnvelopeHeader, bytes]:
    """:func:`seal_bundle_stream` for one destination: (its header, the frame prefix)."""
    headers, prefix = seal_bundle_stream([draft], src, length, spool, sender, [recipient])
    return headers[0], prefix


def write_envelope(prefix: bytes, payload: BinaryIO, out: BinaryIO, chunk_size: int = COPY_CHUNK,
                   digest: str = digests.SHA256) -> str:
    """Write ``prefix`` then ``payload`` (read to its end) to ``out``; return the frame's ``digest``
    (what the destination's transport receipt will bind)."""
    sha = digests.new(digest, prefix)
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

    @property
    def profile(self) -> str:
        """The network's profile, from its roots: 国密 when one of them is SM2 (a 国密 network may also
        hold a P-256 root for its TLS transport only, which signs no envelope)."""
        return SM if any(r.signature_algorithm_oid.dotted_string == SM2_SM3.oid for r in self.trust.roots) \
            else INTERNATIONAL

    @property
    def digest(self) -> str:
        """The protocol's digest on this network (:mod:`exchange_protocol.digests`)."""
        return digests.for_profile(self.profile)


@dataclass(frozen=True)
class VerifiedHeader:
    """One header of a frame, its signature verified and its signer trusted."""

    header: EnvelopeHeader
    signed: SignedHeader
    signer_certificate: x509.Certificate

    @property
    def identity_digest(self) -> str:
        """For duplicate detection (replay.classify_replay): this header and its signature only, with the
        digest the header names (verify_head has held it to the network's)."""
        return self.signed.identity(self.header.digest_algorithm)


@dataclass(frozen=True)
class VerifiedHead:
    """Every header of a frame verified (in frame order), and the frame head they came in."""

    head: FrameHead
    headers: tuple[VerifiedHeader, ...]
    hop_ceiling: int  # the policy's own ceiling, whatever the origin allowed

    def for_node(self, node: str) -> VerifiedHeader:
        """The header whose destination is ``node`` (destinations are unique); ENV_WRONG_RECIPIENT if none."""
        for v in self.headers:
            if v.header.destination_node == node:
                return v
        raise EnvelopeWrongRecipient(_not_for(self.headers, node), destination=self.headers[0].header.destination_node,
                                     me=node)

    def check_hops(self, hops: int, headers: Iterable[VerifiedHeader] | None = None) -> None:
        """ENV_TOO_MANY_HOPS unless each of ``headers`` (all by default) allows ``hops`` relays."""
        for v in self.headers if headers is None else headers:
            allowed = min(v.header.max_hops, self.hop_ceiling)
            if hops > allowed:
                raise EnvelopeTooManyHops(f"envelope {v.header.message_id} would pass {hops} relays, more than "
                                          f"the {allowed} allowed", hops=hops, max_hops=allowed)

    def subset_prefix(self, destinations: Iterable[str], hops: int) -> bytes:
        """The frame prefix carrying only the headers for ``destinations`` (in frame order), with
        ``hops`` (a relay forwards ``head.hops + 1``): write it, then the same payload bytes. No
        re-encryption, no re-signing: the payload is encrypted for all of the original destinations
        and each header stays the origin's. ENV_TOO_MANY_HOPS if a chosen header forbids ``hops``."""
        wanted = set(destinations)
        chosen = [v for v in self.headers if v.header.destination_node in wanted]
        missing = wanted - {v.header.destination_node for v in chosen}
        if not chosen or missing:
            raise ValueError(f"no header in this frame for {sorted(missing) or 'an empty set of destinations'}")
        self.check_hops(hops, chosen)
        return self.head.prefix(hops, [v.signed for v in chosen])


def _not_for(headers: Sequence[VerifiedHeader] | Sequence[EnvelopeHeader], node: str) -> str:
    names = sorted(getattr(h, "header", h).destination_node for h in headers)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"envelope is for node{'s' if len(names) > 1 else ''} {shown}, not {node}"


def verify_head(head: FrameHead, policy: TrustPolicy, now: dt.datetime, destination: str | None) -> VerifiedHead:
    """Judge every header of a frame head. ``destination`` is our node id (one header must be for
    it), or None for a relay (any destinations). One bad header refuses the whole frame."""
    headers = [decode_header(s.header_bytes, policy.limits.max_header) for s in head.signed]
    check_bundle(headers)
    if headers[0].payload_length != head.payload_length:
        raise EnvelopeMalformedFrame("frame and header disagree on the payload length",
                                     frame=head.payload_length, header=headers[0].payload_length)
    if destination is not None and all(h.destination_node != destination for h in headers):
        raise EnvelopeWrongRecipient(_not_for(headers, destination), destination=headers[0].destination_node,
                                     me=destination)
    for header in headers:
        if header.digest_algorithm != policy.digest:
            raise mismatch(f"envelope {header.message_id} names its payload by {header.digest_algorithm} and this "
                           f"{policy.profile} network's digest is {policy.digest}: one network, one profile",
                           message_id=header.message_id, network=policy.profile)
        if header.expires < now:
            raise EnvelopeExpired(f"envelope {header.message_id} expired at {header.expires.isoformat()}",
                                  message_id=header.message_id, expires=header.expires.isoformat())
        if head.hops > min(header.max_hops, policy.max_hops):
            raise EnvelopeTooManyHops(f"envelope has passed {head.hops} relays, more than allowed",
                                      hops=head.hops, max_hops=min(header.max_hops, policy.max_hops))
    verified = tuple(VerifiedHeader(h, s, _verify_signature(h, s, policy, now))
                     for h, s in zip(headers, head.signed, strict=True))
    return VerifiedHead(head, verified, policy.max_hops)


def _verify_signature(header: EnvelopeHeader, signed: SignedHeader, policy: TrustPolicy,
                      now: dt.datetime) -> x509.Certificate:
    """The signer certificate of ``signed``, trusted and naming ``header``'s origin (typed errors)."""
    _check_signature_profile(header, signed.signature, policy.profile)
    try:
        result = cms.verify_detached(signed.signature, signed.header_bytes, trust_roots=policy.trust, now=now,
                                     intermediates=policy.intermediates, purpose=Purpose.SIGNING,
                                     revocation=policy.revocation)
    except RevocationUnknown as exc:  # our CRL is stale or missing: not the sender's fault, retry later
        raise EnvelopeRevocationUnknown(f"cannot check the header signer's revocation: {exc.message}",
                                        cause=exc.code) from None
    except CertificateInvalid as exc:
        raise EnvelopeSignerUntrusted(f"header signer is not trusted: {exc.message}", cause=exc.code) from None
    except PkiError as exc:
        raise EnvelopeBadSignature(f"header signature does not verify: {exc.message}", cause=exc.code) from None
    if isinstance(public_key_of(result.signer_certificate), Sm2PublicKey) != (policy.profile == SM):
        raise mismatch(f"header of {header.message_id} is signed by a certificate of another network profile than "
                       f"this {policy.profile} network's", message_id=header.message_id)
    signer_node = node_id_of(result.signer_certificate)
    if signer_node != header.origin_node:
        raise EnvelopeSignerNotOrigin(f"header signed by node {signer_node!r}, origin says {header.origin_node!r}",
                                      signer=signer_node, origin=header.origin_node)
    return result.signer_certificate


# The outer content type a CMS signature starts with: GB/T 35275's signedData for an SM2 signer (pki.cms).
_GBT_SIGNED_DATA = bytes.fromhex("060a2a811ccf550601040202")  # 1.2.156.10197.6.1.4.2.2


def _check_signature_profile(header: EnvelopeHeader, signature: bytes, profile: str) -> None:
    """``PKI_PROFILE_MISMATCH`` when the header's CMS signature is of the other profile than the network's,
    read from the content type it opens with, before any chain is built (a lie about it still fails
    the chain and the signature after)."""
    signed_sm = _GBT_SIGNED_DATA in signature[:24]
    if signed_sm != (profile == SM):
        raise mismatch(f"envelope {header.message_id} is signed {'SM2/SM3' if signed_sm else 'without SM2'} "
                       f"and this is {'a 国密' if profile == SM else 'an international'} network: "
                       "one network, one profile", message_id=header.message_id, network=profile)


@dataclass(frozen=True)
class OpenedEnvelope:
    header: EnvelopeHeader  # the header addressed to this node
    signer_certificate: x509.Certificate
    envelope_digest: str  # the network's digest of every frame byte received: what the transport receipt binds
    identity_digest: str  # of this node's header, for duplicate detection (replay.classify_replay)
    hops: int
    plaintext_length: int
    verified: VerifiedHead  # every header of the frame: those for other nodes are a relay's to forward


class _Pipeline:
    """The checks every receiver makes, in this order: the head (every header, verify_head) before any
    payload byte is let through, then the payload bytes against the digest the origin signed.

    Fed the frame's bytes as they come (a :class:`FrameDecoder` delimits and digests them), or — given
    ``head`` and ``envelope_digest`` — the payload of a frame already delimited and digested whole
    (:func:`~exchange_protocol.frame.decode_frame`: a receiver reads the head first to recognise a
    duplicate), so that the frame is not decoded and digested a second time. The two come together
    or not at all: a head without its digest would open into an :class:`OpenedEnvelope` binding no
    frame (an empty ``envelope_digest`` for the transport receipt), a digest without its head would be
    ignored — either is the caller's mistake, a ``TypeError`` at once."""

    def __init__(self, policy: TrustPolicy, now: dt.datetime, destination: str | None,
                 head: FrameHead | None = None, envelope_digest: str = "") -> None:
        if (head is None) != (not envelope_digest):
            raise TypeError("head and envelope_digest are given together (a frame already delimited and "
                            f"digested whole) or not at all; got {'a head' if head is not None else 'no head'} "
                            f"and {'a digest' if envelope_digest else 'no digest'}")
        self._policy, self._now, self._destination = policy, now, destination
        self._payload_sha = digests.new(policy.digest)  # every header names it (verify_head)
        self.verified: VerifiedHead | None = None
        self._frame: FrameDecoder | None = None
        self._envelope_digest = envelope_digest
        if head is None:
            self._frame = FrameDecoder(policy.limits, policy.digest)
        else:
            self.verified = verify_head(head, policy, now, destination)

    def _payload(self, data: bytes) -> bytes:
        if self._frame is None:
            payload = data  # the payload itself, its head judged at the start
        else:
            payload = self._frame.feed(data)
            if self.verified is None and self._frame.head is not None:
                self.verified = verify_head(self._frame.head, self._policy, self._now, self._destination)
        if payload:
            self._payload_sha.update(payload)
        return payload

    def _close(self) -> str:
        envelope_sha = self._envelope_digest if self._frame is None else self._frame.close()
        assert self.verified is not None  # a complete frame has a verified head
        header = self.verified.headers[0].header  # all headers carry the same digest (check_bundle)
        if self._payload_sha.hexdigest() != header.payload_digest:
            raise EnvelopePayloadDigestMismatch("payload bytes differ from the digest the origin signed",
                                                message_id=header.message_id)
        return envelope_sha


class EnvelopeOpener(_Pipeline):
    """Receive one frame with a header for this node: ``feed(bytes) -> plaintext``, then ``close()``.

    :attr:`mine` is this node's verified header once the head has been judged (before any payload
    byte is returned); :attr:`verified` all of them.
    """

    def __init__(self, policy: TrustPolicy, key: DecryptionKeys, my_node: str, now: dt.datetime, *,
                 head: FrameHead | None = None, envelope_digest: str = "") -> None:
        super().__init__(policy, now, my_node, head, envelope_digest)
        self._key = key
        self._my_node = my_node
        self._decryptor: PayloadDecryptor | None = None

    @property
    def mine(self) -> VerifiedHeader | None:
        return None if self.verified is None else self.verified.for_node(self._my_node)

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
        v, mine = self.verified, self.mine
        return OpenedEnvelope(mine.header, mine.signer_certificate, envelope_sha, mine.identity_digest, v.head.hops,
                              self._decryptor.plaintext_length, v)


class RelayCheck(_Pipeline):
    """What a relay checks while storing a frame it cannot read: ``feed`` returns payload bytes."""

    def __init__(self, policy: TrustPolicy, now: dt.datetime) -> None:
        super().__init__(policy, now, None)

    def feed(self, data: bytes) -> bytes:
        return self._payload(data)

    def close(self, hop_check: bool = True) -> tuple[VerifiedHead, str]:
        """(verified head, SHA-256 of the frame received). Forward ``subset_prefix(destinations,
        hops + 1)`` + payload per next hop; refused here if any header forbids one more hop — unless
        ``hop_check`` is False: the caller judges each header (``VerifiedHead.check_hops``)."""
        envelope_sha = self._close()
        if hop_check:
            self.verified.check_hops(self.verified.head.hops + 1)
        return self.verified, envelope_sha


def open_envelope(src: BinaryIO, dst: BinaryIO, policy: TrustPolicy, key: DecryptionKeys, my_node: str,
                  now: dt.datetime, chunk_size: int = COPY_CHUNK) -> OpenedEnvelope:
    """Read one frame from ``src`` to its end, writing plaintext to ``dst`` (discard it on error)."""
    opener = EnvelopeOpener(policy, key, my_node, now)
    while chunk := src.read(chunk_size):
        dst.write(opener.feed(chunk))
    return opener.close()


def open_envelope_bytes(data: bytes, policy: TrustPolicy, key: DecryptionKeys, my_node: str,
                        now: dt.datetime) -> tuple[OpenedEnvelope, bytes]:
    opener = EnvelopeOpener(policy, key, my_node, now)
    plaintext = opener.feed(data)
    return opener.close(), plaintext


def open_frame(head: FrameHead, payload: bytes, envelope_digest: str, policy: TrustPolicy, key: DecryptionKeys,
               my_node: str, now: dt.datetime) -> tuple[OpenedEnvelope, bytes]:
    """:func:`open_envelope_bytes` of a frame already delimited and digested whole
    (:func:`~exchange_protocol.frame.decode_frame`, with ``policy``'s limits and digest: a receiver reads
    the head first to recognise a duplicate): an :class:`EnvelopeOpener` given the head, so the same
    checks in the same order — every header, decryption, the signed payload digest, the GCM tag —
    without decoding and digesting the frame a second time."""
    opener = EnvelopeOpener(policy, key, my_node, now, head=head, envelope_digest=envelope_digest)
    plaintext = opener.feed(payload)
    return opener.close(), plaintext
