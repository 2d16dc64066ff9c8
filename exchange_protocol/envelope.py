"""The envelope one node hands another: the routing header and the binary frame around it.

Frame, byte for byte (all integers unsigned big-endian)::

    offset  size  field
    0       4     magic, ASCII "GWXE" (47 57 58 45)
    4       1     frame version, 0x01
    5       1     hops: relays this envelope has passed (0 from the origin). Not signed: each relay
                  increments it, as IP does its TTL, and the signed header's ``max_hops`` bounds it
    6       2     reserved, 0x0000 (a reader refuses anything else)
    8       4     H, length of the header
    12      4     S, length of the header signature
    16      8     P, length of the payload
    24      H     header: canonical JSON (UTF-8), see below
    24+H    S     header signature: DER CMS ContentInfo/SignedData, detached over the H header bytes,
                  made by the origin node's signing key (``openssl cms -verify -binary`` checks it)
    24+H+S  P     payload: DER CMS AuthEnvelopedData for the destination node (envelope_crypto)

Nothing follows the payload; the frame is exactly 24+H+S+P bytes. A reader takes the 24-byte prefix,
refuses H, S and P over the caller's caps before reading them, reads header and signature (small,
bounded) and then streams the payload: :class:`FrameDecoder` is a push parser (``feed(bytes)``) so the
node can decide about the header before the first payload byte is stored.

Header fields (canonical JSON keys; every key always present, ``null`` where allowed)::

    v               protocol version, 1
    id              message id: UUIDv7 text (exchange_protocol.ids), time-ordered, unique
    type            document | receipt | return | recall | urge | reply | transport-ack | bounce
    origin          node id of the node that built and signed the envelope
    destination     node id the payload is encrypted for
    from            统一社会信用代码 of the sending unit; null only for transport-ack and bounce
    to              list of recipient unit codes, unique; empty only for transport-ack
    created         UTC, "YYYY-MM-DDTHH:MM:SSZ"
    expires         UTC, same form, later than created
    in_reply_to     message id this one answers; required for every type except document
    max_hops        1..64: the most relays the origin allows (the frame's hops may not exceed it)
    payload_length  P, the length of the encrypted payload
    payload_sha256  lower-case hex SHA-256 of the P payload bytes as transmitted

Before sealing, a message's header is a :class:`HeaderDraft`: the same fields but the payload's
length and digest, which only encryption fixes. :class:`EnvelopeHeader` is the draft completed with
them — one shape, so the node's drafts, local deliveries and received envelopes all carry it.

The header carries only what routing needs; 签收 who/when, 退回 reasons and the package itself are
inside the encrypted payload. Decoding is strict: unknown or missing keys, wrong JSON types, bad ids,
non-canonical bytes (so one header has exactly one byte form) are typed errors.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, BinaryIO

from pki.ca import NODE_ID_RE
from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

from .canonical import canonical_json, load_json
from .errors import (
    EnvelopeBadMagic,
    EnvelopeHeaderTooLarge,
    EnvelopeInvalidField,
    EnvelopeMalformedFrame,
    EnvelopeMalformedHeader,
    EnvelopeMissingField,
    EnvelopePayloadTooLarge,
    EnvelopeSignatureTooLarge,
    EnvelopeTruncated,
    EnvelopeUnknownField,
    EnvelopeUnsupportedVersion,
    EnvelopeWrongType,
    InvalidId,
)
from .ids import new_id, parse_id
from .replay import envelope_identity

MAGIC = b"GWXE"
FRAME_VERSION = 1
PROTOCOL_VERSION = 1
PREFIX_LEN = 24
MAX_HOPS_LIMIT = 64
_PREFIX = struct.Struct(">4sBBHIIQ")
_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


class MessageType(enum.StrEnum):
    DOCUMENT = "document"
    RECEIPT = "receipt"  # 签收
    RETURN = "return"  # 退回
    RECALL = "recall"  # 撤回
    URGE = "urge"  # 催办
    REPLY = "reply"  # 答复
    TRANSPORT_ACK = "transport-ack"
    BOUNCE = "bounce"


_NODE_GENERATED = {MessageType.TRANSPORT_ACK, MessageType.BOUNCE}


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(name: str, text: str) -> dt.datetime:
    match = _TIME_RE.match(text)
    if not match:
        raise EnvelopeInvalidField(f"{name} must look like 2025-01-31T08:00:00Z", field=name)
    try:  # not strptime: it costs more than the rest of header decoding together
        return dt.datetime(*map(int, match.groups()), tzinfo=dt.UTC)
    except ValueError:
        raise EnvelopeInvalidField(f"{name} is not a real date and time", field=name) from None


@dataclass(frozen=True)
class HeaderDraft:
    """The routing header before sealing: every header field but the payload's length and digest.

    The one shape of a message's header in gwx: the node stores it as a draft (its JSON form,
    :meth:`to_json` / :meth:`from_json`), applies local deliveries with it, and sealing turns it
    into the :class:`EnvelopeHeader` by adding what only encryption knows (:meth:`complete`).
    Construction validates every field (typed errors), so a draft that exists can be sealed.
    """

    message_id: str
    type: MessageType
    origin_node: str
    destination_node: str
    from_unit: str | None
    to_units: tuple[str, ...]
    created: dt.datetime
    expires: dt.datetime
    in_reply_to: str | None = None
    max_hops: int = 8
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        _check_id("id", self.message_id)
        try:
            object.__setattr__(self, "type", MessageType(self.type))
        except ValueError:
            raise EnvelopeInvalidField(f"unknown message type {self.type!r}", field="type",
                                       known=[t.value for t in MessageType]) from None
        for name, node in (("origin", self.origin_node), ("destination", self.destination_node)):
            if not isinstance(node, str) or not NODE_ID_RE.match(node):
                raise EnvelopeInvalidField(f"{name} {node!r} is not a node id", field=name)
        if self.from_unit is None:
            if self.type not in _NODE_GENERATED:
                raise EnvelopeInvalidField(f"a {self.type.value} needs a sending unit", field="from")
        else:
            _check_unit("from", self.from_unit)
        object.__setattr__(self, "to_units", tuple(self.to_units))
        if not self.to_units and self.type is not MessageType.TRANSPORT_ACK:
            raise EnvelopeInvalidField(f"a {self.type.value} needs at least one recipient unit", field="to")
        for code in self.to_units:
            _check_unit("to", code)
        if len(set(self.to_units)) != len(self.to_units):
            raise EnvelopeInvalidField("a recipient unit is listed twice", field="to")
        for name, value in (("created", self.created), ("expires", self.expires)):
            if not isinstance(value, dt.datetime) or value.utcoffset() is None:
                raise EnvelopeInvalidField(f"{name} must be a timezone-aware datetime", field=name)
            object.__setattr__(self, name, value.astimezone(dt.UTC).replace(microsecond=0))
        if self.expires <= self.created:
            raise EnvelopeInvalidField("expires must be later than created", field="expires")
        if self.in_reply_to is None:
            if self.type is not MessageType.DOCUMENT:
                raise EnvelopeInvalidField(f"a {self.type.value} must name the message it answers",
                                           field="in_reply_to")
        else:
            _check_id("in_reply_to", self.in_reply_to)
        if type(self.max_hops) is not int or not 1 <= self.max_hops <= MAX_HOPS_LIMIT:
            raise EnvelopeInvalidField(f"max_hops must be 1..{MAX_HOPS_LIMIT}", field="max_hops")
        if self.version != PROTOCOL_VERSION:
            raise EnvelopeUnsupportedVersion(f"protocol version {self.version!r} is not {PROTOCOL_VERSION}",
                                             field="v")

    @classmethod
    def new(cls, type: MessageType | str, origin_node: str, destination_node: str,
            from_unit: str | None, to_units: Sequence[str], now: dt.datetime, ttl: dt.timedelta,
            in_reply_to: str | None = None, max_hops: int = 8) -> HeaderDraft:
        """A draft with a fresh time-ordered message id, created ``now``, expiring ``now + ttl``."""
        return cls(new_id(now), MessageType(type), origin_node, destination_node, from_unit,
                   tuple(to_units), now, now + ttl, in_reply_to, max_hops)

    def complete(self, payload_length: int, payload_sha256: bytes) -> EnvelopeHeader:
        """The header to sign, once encryption has fixed the payload's length and digest."""
        routing = {f.name: getattr(self, f.name) for f in fields(HeaderDraft)}
        return EnvelopeHeader(**routing, payload_length=payload_length, payload_sha256=payload_sha256.hex())

    def to_json(self) -> dict[str, Any]:
        return {"v": self.version, "id": self.message_id, "type": self.type.value,
                "origin": self.origin_node, "destination": self.destination_node,
                "from": self.from_unit, "to": list(self.to_units),
                "created": format_time(self.created), "expires": format_time(self.expires),
                "in_reply_to": self.in_reply_to, "max_hops": self.max_hops}

    @classmethod
    def from_json(cls, raw: Any) -> HeaderDraft:
        """The draft from its JSON form (parsed), as strictly as :func:`decode_header` reads a header."""
        return cls(**_routing_args(_checked_json(raw, _DRAFT_FIELDS)))


@dataclass(frozen=True, kw_only=True)
class EnvelopeHeader(HeaderDraft):
    """The signed routing header: the draft's fields and the payload's. Construction validates."""

    payload_length: int
    payload_sha256: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if type(self.payload_length) is not int or self.payload_length < 0:
            raise EnvelopeInvalidField("payload_length must be a non-negative integer", field="payload_length")
        if not isinstance(self.payload_sha256, str) or not _HEX64_RE.match(self.payload_sha256):
            raise EnvelopeInvalidField("payload_sha256 must be 64 lower-case hex digits", field="payload_sha256")

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "payload_length": self.payload_length,
                "payload_sha256": self.payload_sha256}

    def encode(self) -> bytes:
        """The canonical JSON bytes that are signed and transmitted."""
        return canonical_json(self.to_json())


def _check_id(name: str, value: Any) -> None:
    try:
        parse_id(value)
    except InvalidId:
        raise EnvelopeInvalidField(f"{name} {str(value)[:60]!r} is not a message id (UUIDv7)", field=name) from None


def _check_unit(name: str, code: Any) -> None:
    try:
        ok = isinstance(code, str) and validate_unit_code(code) == code
    except InvalidUnitCode:
        ok = False
    if not ok:
        raise EnvelopeInvalidField(f"{name}: {str(code)[:40]!r} is not a 统一社会信用代码", field=name)


# JSON key -> (accepted JSON types, nullable)
_DRAFT_FIELDS: dict[str, tuple[type, bool]] = {
    "v": (int, False), "id": (str, False), "type": (str, False), "origin": (str, False),
    "destination": (str, False), "from": (str, True), "to": (list, False), "created": (str, False),
    "expires": (str, False), "in_reply_to": (str, True), "max_hops": (int, False),
}
_FIELDS: dict[str, tuple[type, bool]] = {
    **_DRAFT_FIELDS, "payload_length": (int, False), "payload_sha256": (str, False),
}


def _checked_json(raw: Any, expected: dict[str, tuple[type, bool]]) -> dict[str, Any]:
    """``raw`` if it has exactly the ``expected`` keys with the right JSON types (typed errors)."""
    if not isinstance(raw, dict):
        raise EnvelopeMalformedHeader("envelope header must be a JSON object")
    unknown = sorted(set(raw) - set(expected))
    if unknown:
        raise EnvelopeUnknownField(f"unknown header field {unknown[0]!r}", field=unknown[0])
    missing = sorted(set(expected) - set(raw))
    if missing:
        raise EnvelopeMissingField(f"header field {missing[0]!r} is missing", field=missing[0])
    for key, (kind, nullable) in expected.items():
        value = raw[key]
        if value is None and nullable:
            continue
        # bool is a subclass of int in Python but not a number in JSON: refuse it explicitly.
        if not isinstance(value, kind) or isinstance(value, bool):
            raise EnvelopeWrongType(f"header field {key!r} must be a {kind.__name__}", field=key)
    if raw["v"] != PROTOCOL_VERSION:
        raise EnvelopeUnsupportedVersion(f"protocol version {raw['v']} is not {PROTOCOL_VERSION}", field="v")
    if not all(isinstance(u, str) for u in raw["to"]):
        raise EnvelopeWrongType("header field 'to' must be a list of strings", field="to")
    return raw


def _routing_args(raw: dict[str, Any]) -> dict[str, Any]:
    return dict(message_id=raw["id"], type=raw["type"], origin_node=raw["origin"],
                destination_node=raw["destination"], from_unit=raw["from"], to_units=tuple(raw["to"]),
                created=parse_time("created", raw["created"]), expires=parse_time("expires", raw["expires"]),
                in_reply_to=raw["in_reply_to"], max_hops=raw["max_hops"], version=raw["v"])


def decode_header(data: bytes, max_bytes: int = 64 * 1024) -> EnvelopeHeader:
    """Parse header bytes strictly (typed :class:`~exchange_protocol.errors.EnvelopeHeaderInvalid`)."""
    raw = load_json(data, max_bytes=max_bytes, what="envelope header", error=EnvelopeMalformedHeader)
    _checked_json(raw, _FIELDS)
    header = EnvelopeHeader(**_routing_args(raw), payload_length=raw["payload_length"],
                            payload_sha256=raw["payload_sha256"])
    if header.encode() != bytes(data):
        raise EnvelopeMalformedHeader("envelope header is not in canonical form")
    return header


# ---- the frame ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameLimits:
    """Hard caps a reader enforces before reading (bytes)."""

    max_header: int = 16 * 1024
    max_signature: int = 32 * 1024
    max_payload: int = 4 * 1024 ** 3


@dataclass(frozen=True)
class FrameHead:
    """Everything before the payload: read, size-checked, not yet verified."""

    version: int
    hops: int
    header_bytes: bytes
    signature: bytes
    payload_length: int

    @property
    def identity_digest(self) -> str:
        """The envelope's identity for duplicate detection: hop count left out (see
        :func:`exchange_protocol.replay.envelope_identity`, the one definition)."""
        return envelope_identity(self.header_bytes, self.signature)

    def prefix(self, hops: int | None = None) -> bytes:
        """The bytes before the payload, with ``hops`` replaced (a relay forwards ``hops + 1``)."""
        return encode_prefix(self.header_bytes, self.signature, self.payload_length,
                             self.hops if hops is None else hops)


def encode_prefix(header_bytes: bytes, signature: bytes, payload_length: int, hops: int = 0) -> bytes:
    """Frame prefix, header and signature: write this, then the payload bytes."""
    if not 0 <= hops <= 255:
        raise EnvelopeMalformedFrame(f"hops {hops} does not fit the frame")
    return _PREFIX.pack(MAGIC, FRAME_VERSION, hops, 0, len(header_bytes), len(signature),
                        payload_length) + header_bytes + signature


def encode_envelope(header_bytes: bytes, signature: bytes, payload: bytes, hops: int = 0) -> bytes:
    return encode_prefix(header_bytes, signature, len(payload), hops) + payload


class FrameDecoder:
    """Push parser for one frame. ``feed`` returns payload bytes; ``head`` appears once read.

    Callers check :attr:`head` after every ``feed`` and decide about it before using the payload
    bytes returned with it. ``close()`` raises unless exactly one whole frame arrived and returns
    the SHA-256 of all its bytes (what a transport receipt binds).
    """

    def __init__(self, limits: FrameLimits = FrameLimits()) -> None:
        self._limits = limits
        self._buf = bytearray()
        self._sha = hashlib.sha256()
        self._remaining = 0
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
        if len(self._buf) < PREFIX_LEN:
            self._check_magic()
            return b""
        magic, version, hops, reserved, h, s, p = _PREFIX.unpack_from(self._buf)
        self._check_magic()
        if version != FRAME_VERSION:
            raise EnvelopeUnsupportedVersion(f"envelope frame version {version} is not {FRAME_VERSION}",
                                             version=version)
        if reserved:
            raise EnvelopeMalformedFrame("reserved frame bits are set")
        if h > self._limits.max_header:
            raise EnvelopeHeaderTooLarge(f"header of {h} bytes exceeds {self._limits.max_header}",
                                         size=h, limit=self._limits.max_header)
        if s > self._limits.max_signature:
            raise EnvelopeSignatureTooLarge(f"signature of {s} bytes exceeds {self._limits.max_signature}",
                                            size=s, limit=self._limits.max_signature)
        if p > self._limits.max_payload:
            raise EnvelopePayloadTooLarge(f"payload of {p} bytes exceeds {self._limits.max_payload}",
                                          size=p, limit=self._limits.max_payload)
        end = PREFIX_LEN + h + s
        if len(self._buf) < end:
            return b""
        buf, self._buf = bytes(self._buf), bytearray()
        self.head = FrameHead(version, hops, buf[PREFIX_LEN:PREFIX_LEN + h], buf[PREFIX_LEN + h:end], p)
        self._sha.update(buf[:end])
        rest = buf[end:]
        if len(rest) > p:
            raise EnvelopeMalformedFrame("bytes after the end of the envelope frame")
        self._remaining = p - len(rest)
        self._sha.update(rest)
        return rest

    def _check_magic(self) -> None:
        n = min(len(self._buf), 4)
        if self._buf[:n] != MAGIC[:n]:
            raise EnvelopeBadMagic("not a gwx envelope (bad magic)")

    @property
    def complete(self) -> bool:
        return self.head is not None and self._remaining == 0

    def close(self) -> str:
        if not self.complete:
            missing = self._remaining if self.head is not None else None
            raise EnvelopeTruncated("the envelope ends early", received=self.received,
                                    payload_missing=missing)
        return self._sha.hexdigest()


def frame_length(prefix: bytes, limits: FrameLimits = FrameLimits()) -> int:
    """The total length of the frame whose first :data:`PREFIX_LEN` bytes are ``prefix``.

    Lets a reader split a stream of frames sent back to back; the prefix is checked (magic,
    version, reserved bits, caps) exactly as :class:`FrameDecoder` checks it.
    """
    if len(prefix) < PREFIX_LEN:
        raise EnvelopeTruncated("the envelope ends inside its prefix", received=len(prefix))
    decoder = FrameDecoder(limits)
    decoder.feed(bytes(prefix[:PREFIX_LEN]))  # raises the typed error for a bad prefix
    _, _, _, _, h, s, p = _PREFIX.unpack_from(prefix)
    return PREFIX_LEN + h + s + p


def decode_frame(data: bytes, limits: FrameLimits = FrameLimits()) -> tuple[FrameHead, bytes, str]:
    """A whole frame held in memory → (head, payload, SHA-256 of the frame)."""
    dec = FrameDecoder(limits)
    payload = dec.feed(data)
    return dec.head, payload, dec.close()  # type: ignore[return-value]


def read_head(src: BinaryIO, limits: FrameLimits = FrameLimits()) -> FrameHead | None:
    """The head of the frame stored in ``src`` (read up to the payload), or None if it ends first."""
    decoder = FrameDecoder(limits)
    while decoder.head is None and (chunk := src.read(64 * 1024)):
        decoder.feed(chunk)
    return decoder.head
