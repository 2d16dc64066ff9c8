"""Business notices: the encrypted payload of receipt/return/recall/urge/reply/transport-ack/bounce.

A notice is small canonical JSON (``canonical.canonical_json``), encrypted for the destination node
like any payload; the envelope header (signed by the origin node) says who sends it and which
envelope it answers (``in_reply_to``). Fields (every key always present, ``null`` where allowed)::

    v        1
    type     receipt (签收) | return (退回) | recall (撤回) | urge (催办) | reply (答复)
             | transport-ack (delivered into the unit's inbox) | bounce (undeliverable)
    doc_id   the 公文标识 concerned; null only in a bounce from a relay, which cannot read the
             document (the origin finds it by the bounced message: the header's ``in_reply_to``)
    units    the units concerned: for receipt/return/transport-ack the receiving units that act,
             for recall/urge the recipient units addressed, for bounce the units not reached
    by       the person acting (签收人, 退回人, 撤回人…) or null for node-generated notices
    at       when it happened, UTC ``YYYY-MM-DDTHH:MM:SSZ``
    reason   退回 reason, bounce reason, recall note, or null
    text     答复 text or urge note, or null

The receiving node applies a notice to its per-recipient rows through ``states``; the rules
(e.g. a recall after 签收 has no effect) live there, not here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pki.errors import ErrorKind, InvalidUnitCode
from pki.unit_code import validate_unit_code

from .canonical import canonical_json, load_json
from .envelope import MessageType, format_time
from .errors import ProtocolError
from .model import check_doc_id

MAX_NOTICE_BYTES = 64 * 1024
MAX_TEXT = 2000
_KEYS = frozenset({"v", "type", "doc_id", "units", "by", "at", "reason", "text"})


class NoticeError(ProtocolError):
    code = "NOTICE_INVALID"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("NOTICE_REASON_REQUIRED", "NOTICE_BY_REQUIRED", "NOTICE_DUPLICATE_UNIT", "NOTICE_TYPE_MISMATCH",
                "NOTICE_BAD_DOC_ID")


@dataclass(frozen=True)
class Notice:
    type: MessageType
    doc_id: str | None
    units: tuple[str, ...]
    at: dt.datetime
    by: str | None = None
    reason: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.type is MessageType.DOCUMENT:
            raise NoticeError("a document is not a notice")
        if not (self.doc_id is None and self.type is MessageType.BOUNCE):  # a relay's bounce has none
            try:
                check_doc_id(self.doc_id, "doc_id")
            except ProtocolError as exc:  # a notice about an id no route could address concerns nothing of ours
                raise NoticeError(f"notice: {exc.message}", code="NOTICE_BAD_DOC_ID") from None
        if self.type is MessageType.RETURN and not (self.reason or "").strip():
            raise NoticeError("退回 needs a reason", code="NOTICE_REASON_REQUIRED")
        if self.type in (MessageType.RECEIPT, MessageType.RETURN) and not (self.by or "").strip():
            raise NoticeError("签收/退回 needs the person who acted", code="NOTICE_BY_REQUIRED")
        for name in ("by", "reason", "text"):
            value = getattr(self, name)
            if value is not None and len(value) > MAX_TEXT:
                raise NoticeError(f"notice {name} longer than {MAX_TEXT} characters")
        if self.at.tzinfo is None:
            raise NoticeError("notice time must be timezone-aware")
        if len(set(self.units)) != len(self.units):
            raise NoticeError("a notice names a unit twice", code="NOTICE_DUPLICATE_UNIT")

    def encode(self) -> bytes:
        return canonical_json({"v": 1, "type": self.type.value, "doc_id": self.doc_id,
                               "units": list(self.units), "by": self.by, "at": format_time(self.at),
                               "reason": self.reason, "text": self.text})


def decode_notice(data: bytes) -> Notice:
    raw = load_json(data, max_bytes=MAX_NOTICE_BYTES, what="notice", error=NoticeError)
    if not isinstance(raw, dict):
        raise NoticeError("notice must be a JSON object")
    if set(raw) != _KEYS:
        raise NoticeError(f"notice keys differ: missing {sorted(_KEYS - set(raw))}, "
                          f"unknown {sorted(set(raw) - _KEYS)}")
    if raw["v"] != 1:
        raise NoticeError(f"unsupported notice version {raw['v']!r}")
    try:
        kind = MessageType(raw["type"])
    except (ValueError, TypeError):
        raise NoticeError(f"unknown notice type {raw['type']!r}") from None
    units = raw["units"]
    if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
        raise NoticeError("notice units must be a list of unit codes")
    try:
        codes = tuple(validate_unit_code(u) for u in units)
    except InvalidUnitCode as exc:
        raise NoticeError(f"notice names a bad unit code: {exc.message}") from None
    for key in ("doc_id", "at"):
        if not isinstance(raw[key], str) and not (key == "doc_id" and raw[key] is None):
            raise NoticeError(f"notice {key} must be a string")
    for key in ("by", "reason", "text"):
        if raw[key] is not None and not isinstance(raw[key], str):
            raise NoticeError(f"notice {key} must be a string or null")
    try:
        at = dt.datetime.strptime(raw["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise NoticeError(f"notice time {raw['at']!r} is not YYYY-MM-DDTHH:MM:SSZ") from None
    return Notice(kind, raw["doc_id"], codes, at, raw["by"], raw["reason"], raw["text"])


def notice_dict(notice: Notice) -> dict[str, Any]:
    return {"type": notice.type.value, "doc_id": notice.doc_id, "units": list(notice.units),
            "by": notice.by, "at": notice.at.isoformat(), "reason": notice.reason, "text": notice.text}
