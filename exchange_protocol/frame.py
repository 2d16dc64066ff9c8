"""The binary frame one node hands another: K signed routing headers and one encrypted payload.

Frame version 2, byte for byte (all integers unsigned big-endian)::

    offset          size  field
    0               4     magic, ASCII "GWXE" (47 57 58 45)
    4               1     frame version, 0x02
    5               1     hops: relays this frame has passed (0 from the origin). Not signed: each relay
                          increments it, as IP does its TTL, and every signed header's ``max_hops``
                          bounds it
    6               2     K, the number of signed headers, 1..``FrameLimits.max_headers``
    8               8     P, length of the payload
    16              8·K   the table, for i = 1..K: H_i (4), length of header i; S_i (4), length of its
                          signature
    16+8K           ΣH+ΣS header 1 (H_1 bytes), signature 1 (S_1 bytes), header 2, signature 2, …,
                          header K, signature K. A header is canonical JSON (exchange_protocol.envelope);
                          its signature a DER CMS ContentInfo/SignedData, detached over exactly those
                          header bytes, made by the origin node's signing key (``openssl cms -verify
                          -binary`` checks it)
    16+8K+ΣH+ΣS     P     payload: DER CMS AuthEnvelopedData, its content key wrapped for the
                          destination node of every header (envelope_crypto)

Nothing follows the payload. K = 1 is the ordinary envelope: one destination node. K > 1 is a
*bundle* (fan-out, issue 8 §4): one document encrypted once for K destination nodes, each with a
header of its own (its destination, units and message id) that the origin signed separately. Why
not one header listing K destinations: a relay splitting a bundle by subtree forwards only the
headers below each next hop — unchanged, still verifiable, no re-signing and no re-encryption
(:meth:`FrameHead.prefix` with a subset, then the same payload bytes) — and every destination sees
its own header exactly as a single envelope's, so message ids, receipts and the duplicate identity
(:func:`exchange_protocol.replay.envelope_identity` over one header and its signature, the hop
count and the other headers left out) are per destination whatever the route. The rules between a
bundle's headers (one origin, destinations and ids unique, one payload) are
:func:`exchange_protocol.envelope.check_bundle`'s.

Frame version 1 (one header, a 24-byte prefix) is not read: no node ever held it in production,
and one format is one parser. A reader takes the 16 fixed bytes and refuses a bad magic or version,
K = 0, K over the cap and P over the cap; then the 8·K table bytes, refusing any H_i, S_i or their
sum over the caps — all before reading a header. Heads are small and bounded; the payload is
streamed: :class:`FrameDecoder` is a push parser (``feed(bytes)``) so the node can judge every
header before the first payload byte is stored.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from . import digests
from .errors import (
    EnvelopeBadMagic,
    EnvelopeBundleUnsupported,
    EnvelopeHeaderTooLarge,
    EnvelopeHeadTooLarge,
    EnvelopeMalformedFrame,
    EnvelopePayloadTooLarge,
    EnvelopeSignatureTooLarge,
    EnvelopeTooManyHeaders,
    EnvelopeTruncated,
    EnvelopeUnsupportedVersion,
)
from .replay import envelope_identity

MAGIC = b"GWXE"
FRAME_VERSION = 2
FIXED_LEN = 16  # magic, version, hops, K, P: what a reader needs to know how long the table is
_FIXED = struct.Struct(">4sBBHQ")
_ENTRY = struct.Struct(">II")


@dataclass(frozen=True)
class FrameLimits:
    """Hard caps a reader enforces before reading (bytes, and headers per frame)."""

    max_header: int = 16 * 1024
    max_signature: int = 32 * 1024
    max_payload: int = 4 * 1024 ** 3
    max_headers: int = 1024  # K: a city's 通知 goes to fewer nodes than this along any one link
    max_head_bytes: int = 8 * 1024 * 1024  # all headers and signatures of one frame together (held in memory)


@dataclass(frozen=True)
class SignedHeader:
    """One header's bytes and the origin's detached signature over them, as they travel."""

    header_bytes: bytes
    signature: bytes

    def identity(self, digest: str = digests.SHA256) -> str:
        """This header's envelope identity for duplicate detection, with the network's ``digest`` (see
        :func:`exchange_protocol.replay.envelope_identity`, the one definition)."""
        return envelope_identity(self.header_bytes, self.signature, digest)


@dataclass(frozen=True)
class FrameHead:
    """Everything before the payload: read, size-checked, not yet verified."""

    version: int
    hops: int
    signed: tuple[SignedHeader, ...]
    payload_length: int

    @property
    def count(self) -> int:
        return len(self.signed)

    def single(self) -> SignedHeader:
        """The one signed header of an ordinary envelope; a bundle (K > 1) is ``ENV_BUNDLE_UNSUPPORTED``
        (for code that handles one destination per frame)."""
        if len(self.signed) != 1:
            raise EnvelopeBundleUnsupported(f"a bundle of {len(self.signed)} headers where one envelope was expected",
                                            headers=len(self.signed))
        return self.signed[0]

    def prefix(self, hops: int | None = None, signed: Sequence[SignedHeader] | None = None) -> bytes:
        """The bytes before the payload with ``hops`` replaced (a relay forwards ``hops + 1``) and,
        given ``signed``, only those headers (a relay's subset for one next hop): the same payload
        bytes follow."""
        return encode_prefix(self.signed if signed is None else signed, self.payload_length,
                             self.hops if hops is None else hops)


def encode_prefix(signed: Sequence[SignedHeader], payload_length: int, hops: int = 0) -> bytes:
    """Fixed part, table, headers and signatures: write this, then the payload bytes."""
    if not 0 <= hops <= 255:
        raise EnvelopeMalformedFrame(f"hops {hops} does not fit the frame")
    if not 1 <= len(signed) <= 0xFFFF:
        raise EnvelopeMalformedFrame(f"a frame carries 1..65535 headers, not {len(signed)}")
    parts = [_FIXED.pack(MAGIC, FRAME_VERSION, hops, len(signed), payload_length)]
    parts += [_ENTRY.pack(len(s.header_bytes), len(s.signature)) for s in signed]
    for s in signed:
        parts += (s.header_bytes, s.signature)
    return b"".join(parts)


def encode_envelope(signed: Sequence[SignedHeader], payload: bytes, hops: int = 0) -> bytes:
    return encode_prefix(signed, len(payload), hops) + payload


# ---- reading ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameLayout:
    """A frame's lengths, read from its fixed part and table and checked against the caps."""

    hops: int
    lengths: tuple[tuple[int, int], ...]  # (H_i, S_i)
    payload_length: int

    @property
    def table_end(self) -> int:
        """Where the first header starts."""
        return FIXED_LEN + _ENTRY.size * len(self.lengths)

    @property
    def head_length(self) -> int:
        """Where the payload starts."""
        return self.table_end + sum(h + s for h, s in self.lengths)

    @property
    def frame_length(self) -> int:
        return self.head_length + self.payload_length

    def signed_headers(self, head: bytes) -> tuple[SignedHeader, ...]:
        """Cut the ``head_length`` bytes of ``head`` into its signed headers."""
        out, pos = [], self.table_end
        for h, s in self.lengths:
            out.append(SignedHeader(head[pos:pos + h], head[pos + h:pos + h + s]))
            pos += h + s
        return tuple(out)


def _check_magic(data: bytes | bytearray) -> None:
    n = min(len(data), 4)
    if data[:n] != MAGIC[:n]:
        raise EnvelopeBadMagic("not a gwx envelope (bad magic)")


def prefix_length(data: bytes | bytearray, limits: FrameLimits = FrameLimits()) -> int:
    """How many bytes the fixed part and the table take, from the first :data:`FIXED_LEN` of ``data``.

    Checks magic, version, K and P (typed errors); ``EnvelopeTruncated`` if ``data`` is shorter.
    """
    _check_magic(data)
    if len(data) < FIXED_LEN:
        raise EnvelopeTruncated("the envelope ends inside its fixed prefix", received=len(data))
    _, version, _, count, payload = _FIXED.unpack_from(data)
    if version != FRAME_VERSION:
        raise EnvelopeUnsupportedVersion(f"envelope frame version {version} is not {FRAME_VERSION}",
                                         version=version)
    if count == 0:
        raise EnvelopeMalformedFrame("a frame without a header")
    if count > limits.max_headers:
        raise EnvelopeTooManyHeaders(f"{count} headers in one frame exceed {limits.max_headers}",
                                     size=count, limit=limits.max_headers)
    if payload > limits.max_payload:
        raise EnvelopePayloadTooLarge(f"payload of {payload} bytes exceeds {limits.max_payload}",
                                      size=payload, limit=limits.max_payload)
    return FIXED_LEN + _ENTRY.size * count


def read_layout(data: bytes | bytearray, limits: FrameLimits = FrameLimits()) -> FrameLayout:
    """The layout from the fixed part and the table at the start of ``data`` (:func:`prefix_length`
    bytes at least; ``EnvelopeTruncated`` if fewer); every length is checked against the caps."""
    end = prefix_length(data, limits)
    if len(data) < end:
        raise EnvelopeTruncated("the envelope ends inside its header table", received=len(data))
    _, _, hops, count, payload = _FIXED.unpack_from(data)
    lengths = tuple(_ENTRY.iter_unpack(bytes(data[FIXED_LEN:end])))
    total = 0
    for h, s in lengths:
        if h > limits.max_header:
            raise EnvelopeHeaderTooLarge(f"header of {h} bytes exceeds {limits.max_header}",
                                         size=h, limit=limits.max_header)
        if s > limits.max_signature:
            raise EnvelopeSignatureTooLarge(f"signature of {s} bytes exceeds {limits.max_signature}",
                                            size=s, limit=limits.max_signature)
        total += h + s
    if total > limits.max_head_bytes:
        raise EnvelopeHeadTooLarge(f"{count} headers and signatures of {total} bytes exceed {limits.max_head_bytes}",
                                      size=total, limit=limits.max_head_bytes)
    return FrameLayout(hops, lengths, payload)


def frame_length(prefix: bytes, limits: FrameLimits = FrameLimits()) -> int:
    """The total length of the frame that starts with ``prefix`` (fixed part and table at least):
    lets a reader split frames sent back to back, checked exactly as :class:`FrameDecoder` checks."""
    return read_layout(prefix, limits).frame_length


class FrameDecoder:
    """Push parser for one frame. ``feed`` returns payload bytes; ``head`` appears once read.

    Callers check :attr:`head` after every ``feed`` and decide about it before using the payload
    bytes returned with it. ``close()`` raises unless exactly one whole frame arrived and returns
    the digest of all its bytes (what a transport receipt binds): ``digest`` is the network's,
    SHA-256 or SM3 (:mod:`exchange_protocol.digests`).
    """

    def __init__(self, limits: FrameLimits = FrameLimits(), digest: str = digests.SHA256) -> None:
        self._limits = limits
        self._buf = bytearray()
        self._sha = digests.new(digest)
        self._remaining = 0
        self._layout: FrameLayout | None = None
        self.head: FrameHead | None = None
        self.received = 0

    def feed(self, data: bytes) -> bytes:
        self.received += len(data)
        if self.head is not None:
            if len(data) > self._remaining:
                raise EnvelopeMalformedFrame("bytes after the end of the envelope frame")
            self._remaining -= len(data)
            self._sha.update(data)
            return data
        self._buf += data
        if self._layout is None:
            if len(self._buf) < FIXED_LEN:
                _check_magic(self._buf)
                return b""
            if len(self._buf) < prefix_length(self._buf, self._limits):  # refuses a bad fixed part now
                return b""
            self._layout = read_layout(self._buf, self._limits)
        end = self._layout.head_length
        if len(self._buf) < end:
            return b""
        buf, self._buf = bytes(self._buf), bytearray()
        layout = self._layout
        self.head = FrameHead(FRAME_VERSION, layout.hops, layout.signed_headers(buf), layout.payload_length)
        self._sha.update(buf[:end])
        rest = buf[end:]
        if len(rest) > layout.payload_length:
            raise EnvelopeMalformedFrame("bytes after the end of the envelope frame")
        self._remaining = layout.payload_length - len(rest)
        self._sha.update(rest)
        return rest

    @property
    def complete(self) -> bool:
        return self.head is not None and self._remaining == 0

    def close(self) -> str:
        if not self.complete:
            missing = self._remaining if self.head is not None else None
            raise EnvelopeTruncated("the envelope ends early", received=self.received,
                                    payload_missing=missing)
        return self._sha.hexdigest()


def decode_frame(data: bytes, limits: FrameLimits = FrameLimits(),
                 digest: str = digests.SHA256) -> tuple[FrameHead, bytes, str]:
    """A whole frame held in memory → (head, payload, the frame's ``digest``: what a receipt binds)."""
    dec = FrameDecoder(limits, digest)
    payload = dec.feed(data)
    return dec.head, payload, dec.close()  # type: ignore[return-value]


def read_head(src: BinaryIO, limits: FrameLimits = FrameLimits()) -> FrameHead | None:
    """The head of the frame stored in ``src`` (read up to the payload), or None if it ends first."""
    decoder = FrameDecoder(limits)
    while decoder.head is None and (chunk := src.read(64 * 1024)):
        decoder.feed(chunk)
    return decoder.head
