"""The envelope's routing header: what one node tells another about a message, signed by its origin.

An envelope is one or more signed headers and one encrypted payload in a binary frame
(:mod:`exchange_protocol.frame`, byte for byte there). This module is the header: its fields, their
validation, its one canonical byte form, and the rules between the headers of one bundle
(:func:`check_bundle`).

Header fields (canonical JSON keys; every key always present, ``null`` where allowed)::

    v               protocol version, 1
    id              message id: UUIDv7 text (exchange_protocol.ids), time-ordered, unique
    type            document | receipt | return | recall | urge | reply | transport-ack | bounce
    origin          node id of the node that built and signed the envelope
    destination     node id this header is for; the payload is encrypted for it (in a bundle, for
                    the destination of every header)
    from            统一社会信用代码 of the sending unit; null only for transport-ack and bounce
    to              list of recipient unit codes, unique; empty only for transport-ack
    created         UTC, "YYYY-MM-DDTHH:MM:SSZ"
    expires         UTC, same form, later than created
    in_reply_to     message id this one answers; required for every type except document
    max_hops        1..64: the most relays the origin allows (the frame's hops may not exceed it)
    payload_length  P, the length of the encrypted payload (the same in every header of a bundle)
    payload_sha256  lower-case hex SHA-256 of the P payload bytes as transmitted — on an international
                    network; a 国密 one's header has ``payload_sm3`` instead, the SM3 of those bytes
                    (exchange_protocol.digests: the key names the algorithm, exactly one is present)

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
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from pki.certificates import NODE_ID_RE
from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

from . import digests
from .canonical import canonical_json, load_json
from .errors import (
    EnvelopeBundleDuplicateDestination,
    EnvelopeBundleDuplicateId,
    EnvelopeBundleMixedOrigins,
    EnvelopeBundlePayloadMismatch,
    EnvelopeInvalidField,
    EnvelopeMalformedHeader,
    EnvelopeMissingField,
    EnvelopeUnknownField,
    EnvelopeUnsupportedVersion,
    EnvelopeWrongType,
    InvalidId,
)
from .ids import new_id, parse_id

PROTOCOL_VERSION = 1
MAX_HOPS_LIMIT = 64
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
    ESCALATE = "escalate"  # 督办: an overdue document escalated to the late unit's supervising unit
    FORWARD = "forward"  # 转发: a received document's package, unchanged, sent on with a cover (in_reply_to)
    FORWARDED = "forwarded"  # 转发告知: a recipient unit tells the issuer it forwarded the document (a notice)


_NODE_GENERATED = {MessageType.TRANSPORT_ACK, MessageType.BOUNCE}
_STARTS = {MessageType.DOCUMENT, MessageType.ESCALATE}  # answer no message: a 督办 starts its own exchange


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
            if self.type not in _STARTS:
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

    def complete(self, payload_length: int, payload_digest: bytes,
                 digest_algorithm: str = digests.SHA256) -> EnvelopeHeader:
        """The header to sign, once encryption has fixed the payload's length and digest (of the
        network's ``digest_algorithm``, :mod:`exchange_protocol.digests`)."""
        routing = {f.name: getattr(self, f.name) for f in fields(HeaderDraft)}
        return EnvelopeHeader(**routing, payload_length=payload_length, payload_digest=payload_digest.hex(),
                              digest_algorithm=digest_algorithm)

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
    payload_digest: str  # lower-case hex, of digest_algorithm
    digest_algorithm: str = digests.SHA256  # the network's (exchange_protocol.digests): "sha256" | "sm3"

    def __post_init__(self) -> None:
        super().__post_init__()
        if type(self.payload_length) is not int or self.payload_length < 0:
            raise EnvelopeInvalidField("payload_length must be a non-negative integer", field="payload_length")
        if self.digest_algorithm not in digests.NAMES:
            raise EnvelopeInvalidField(f"payload digest {self.digest_algorithm!r} is not one of {digests.NAMES}",
                                       field="payload_digest")
        if not isinstance(self.payload_digest, str) or not _HEX64_RE.match(self.payload_digest):
            raise EnvelopeInvalidField(f"{self.digest_field} must be 64 lower-case hex digits", field=self.digest_field)

    @property
    def digest_field(self) -> str:
        """The JSON key of the payload digest: it names the algorithm."""
        return f"payload_{self.digest_algorithm}"

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "payload_length": self.payload_length,
                self.digest_field: self.payload_digest}

    def encode(self) -> bytes:
        """The canonical JSON bytes that are signed and transmitted."""
        return canonical_json(self.to_json())


def check_bundle(headers: Sequence[HeaderDraft]) -> None:
    """The rules between the headers of one frame (a bundle when there are several), typed errors:
    one origin seals a bundle; destinations are unique (a relay splits by destination) and so are
    message ids; completed headers share one payload, so all carry the same length and digest.
    The sealer checks its drafts with it, every reader the headers it received."""
    if len({h.origin_node for h in headers}) > 1:
        raise EnvelopeBundleMixedOrigins("the headers of one bundle name different origins",
                                         origins=sorted({h.origin_node for h in headers}))
    for name, key, error in (("destination", lambda h: h.destination_node, EnvelopeBundleDuplicateDestination),
                             ("message id", lambda h: h.message_id, EnvelopeBundleDuplicateId)):
        seen: set[str] = set()
        for h in headers:
            if key(h) in seen:
                raise error(f"{name} {key(h)} appears twice in one bundle", value=key(h))
            seen.add(key(h))
    payloads = {(h.payload_length, h.digest_algorithm, h.payload_digest) for h in headers
                if isinstance(h, EnvelopeHeader)}
    if len(payloads) > 1:
        raise EnvelopeBundlePayloadMismatch("the headers of one bundle disagree on the payload they share")


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
# One set of keys per payload digest (exchange_protocol.digests): a header carries exactly one of them.
_FIELDS: dict[str, dict[str, tuple[type, bool]]] = {
    name: {**_DRAFT_FIELDS, "payload_length": (int, False), f"payload_{name}": (str, False)}
    for name in digests.NAMES
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
    """Parse header bytes strictly (typed :class:`~exchange_protocol.errors.EnvelopeHeaderInvalid`).

    The same bytes always give the same (frozen) header, so the last few thousand decoded are
    kept: a node decodes each arriving header four or five times (the peer API naming the
    message, acceptance, the signature check, the processor) — 8 % of a receiver's GIL time. A
    header that fails is judged afresh each time (errors are not kept). Only headers of up to
    :data:`CACHED_HEADER_BYTES` are kept (a document's to a few units), so the cache holds at most
    16 MiB whatever a peer sends; a fan-out header naming thousands of units is decoded each time."""
    data = bytes(data)
    if len(data) > CACHED_HEADER_BYTES:
        return _decode_header.__wrapped__(data, max_bytes)
    return _decode_header(data, max_bytes)


CACHED_HEADER_BYTES = 4096


@functools.lru_cache(maxsize=4096)
def _decode_header(data: bytes, max_bytes: int) -> EnvelopeHeader:
    raw = load_json(data, max_bytes=max_bytes, what="envelope header", error=EnvelopeMalformedHeader)
    # The digest key present names the algorithm; with both, the second is an unknown field.
    algorithm = digests.SM3 if isinstance(raw, dict) and "payload_sm3" in raw else digests.SHA256
    _checked_json(raw, _FIELDS[algorithm])
    header = EnvelopeHeader(**_routing_args(raw), payload_length=raw["payload_length"],
                            payload_digest=raw[f"payload_{algorithm}"], digest_algorithm=algorithm)
    if header.encode() != data:
        raise EnvelopeMalformedHeader("envelope header is not in canonical form")
    return header
