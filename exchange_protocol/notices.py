"""Business notices: the encrypted payload of receipt/return/recall/urge/reply/transport-ack/bounce.

A notice is small canonical JSON (``canonical.canonical_json``), encrypted for the destination node
like any payload; the envelope header (signed by the origin node) says who sends it and which
envelope it answers (``in_reply_to``). Fields of one notice, version 1 (every key always present,
``null`` where allowed)::

    v        1
    type     receipt (签收) | return (退回) | recall (撤回) | urge (催办) | reply (答复)
             | transport-ack (delivered into the unit's inbox) | bounce (undeliverable)
             | forwarded (转发告知: the recipient unit in the header's ``from`` forwarded the document)
    doc_id   the 公文标识 concerned; null only in a bounce from a relay, which cannot read the
             document (the origin finds it by the bounced message: the header's ``in_reply_to``)
    units    the units concerned: for receipt/return/transport-ack the receiving units that act,
             for recall/urge the recipient units addressed, for bounce the units not reached,
             for forwarded the units it was forwarded to
    by       the person acting (签收人, 退回人, 撤回人…) or null for node-generated notices
    at       when it happened, UTC ``YYYY-MM-DDTHH:MM:SSZ``
    reason   退回 reason, bounce reason, recall note, or null
    text     答复 text or urge note, or null; for forwarded the cover 通知's 公文标识 (required)
    evidence (optional, receipt/return only) the unit-signed statement of this 签收/退回, base64 of
             its CMS DER (``exchange_protocol.statements``); absent from an older node's notices,
             which still apply. A notice carrying it names exactly one unit.

**Batches** (version 2). Several notices answering the same message go in one payload, so 3,600
签收 of one 通知 cost a few envelopes per node that signs, not one each::

    v        2
    type     receipt | return | reply (:data:`BATCHABLE`: what receiving units say, each on its own)
    doc_id   the 公文标识 they all concern
    notices  1..MAX_BATCH objects with exactly the keys units, by, at, reason, text (as above),
             and evidence where the notice has it; no unit appears in two of them

Each entry keeps its own units, 签收人 and time, and the receiving node authorises and applies it
as if it had come alone. A single notice is always written as version 1, so a batch is the only
thing a node that knows version 1 alone cannot read. The whole payload stays within
:data:`MAX_NOTICE_BYTES`, or :data:`MAX_SIGNED_NOTICE_BYTES` when its notices carry statements;
:func:`pack_notices` cuts a longer run into several.

Which notices may share an envelope (:func:`batch_key`): same destination node, same batchable
type, same answered message (``in_reply_to``, hence the same document) and the same addressed
units. The sender (``node.federation.envelope_builder``) coalesces such drafts when it seals:
there is no timer — a notice finding its hop idle leaves at once, and the ones written while a
frame is in flight to that hop (one batch in flight per hop) wait for it and leave together in
the next (Nagle's rule). A batch's header names the first entry's unit as ``from`` (a header
needs one); the receiver reads every entry's units from the payload, never from the header.

The receiving node applies a notice to its per-recipient rows through ``states``; the rules
(e.g. a recall after 签收 has no effect) live there, not here.

**督办** (``escalate``, :class:`Escalation`) is a notice of its own shape: the node hosting a unit
that left a document unsettled past its 办理时限 and the network's grace tells the unit's
supervising unit (``exchange_protocol.supervision`` decides when). Its header names the late unit
as ``from`` and the supervisor as the only ``to``; the payload says which document, sent by whom,
due when and how late, and — in a second escalation about the same document and unit, sent when
the unit finally acts — when it was settled, by whom and how (``signed_for`` or ``returned``)::

    v 1, type "escalate", doc_id, unit, supervisor, sent_by, title, deadline, escalated_at,
    working_days_late, settled_at|null, settled_by|null, settled_as|null
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pki.errors import ErrorKind, InvalidUnitCode
from pki.unit_code import validate_unit_code

from .canonical import canonical_json, load_json
from .envelope import HeaderDraft, MessageType, format_time
from .errors import ProtocolError
from .model import check_doc_id

MAX_NOTICE_BYTES = 64 * 1024  # a notice payload, single or batch, whose notices carry no statement
# ... and one whose notices carry their unit-signed statements (~2 KB each in base64, more with
# intermediate CAs): a full batch of them still fits, so 3,600 签收 take as few envelopes either way.
MAX_SIGNED_NOTICE_BYTES = 1024 * 1024  # (the acceptor reads no more)
MAX_TEXT = 2000
MAX_BATCH = 256  # notices in one batch payload
BATCHABLE = frozenset({MessageType.RECEIPT, MessageType.RETURN, MessageType.REPLY})
_KEYS = frozenset({"v", "type", "doc_id", "units", "by", "at", "reason", "text"})
_BATCH_KEYS = frozenset({"v", "type", "doc_id", "notices"})
_ENTRY_KEYS = frozenset({"units", "by", "at", "reason", "text"})
EVIDENCE = "evidence"  # the optional key (a newer node's): its presence is checked apart from the fixed keys
MAX_EVIDENCE = 32 * 1024  # bytes of DER, as exchange_protocol.statements allows


class NoticeError(ProtocolError):
    code = "NOTICE_INVALID"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("NOTICE_REASON_REQUIRED", "NOTICE_BY_REQUIRED", "NOTICE_DUPLICATE_UNIT", "NOTICE_TYPE_MISMATCH",
                "NOTICE_BAD_DOC_ID", "NOTICE_BATCH_EMPTY", "NOTICE_BATCH_TOO_LARGE", "NOTICE_BATCH_MIXED",
                "NOTICE_NOT_BATCHABLE", "NOTICE_BAD_EVIDENCE", "NOTICE_BAD_FORWARD")


@dataclass(frozen=True)
class Notice:
    type: MessageType
    doc_id: str | None
    units: tuple[str, ...]
    at: dt.datetime
    by: str | None = None
    reason: str | None = None
    text: str | None = None
    evidence: bytes | None = None  # the unit-signed statement (CMS DER) of a 签收/退回

    def __post_init__(self) -> None:
        if self.evidence is not None:
            if self.type not in (MessageType.RECEIPT, MessageType.RETURN) or len(self.units) != 1:
                raise NoticeError("only a 签收 or 退回 of one unit carries a statement", code="NOTICE_BAD_EVIDENCE")
            if not isinstance(self.evidence, bytes) or not 0 < len(self.evidence) <= MAX_EVIDENCE:
                raise NoticeError(f"a notice's statement is 1–{MAX_EVIDENCE} bytes", code="NOTICE_BAD_EVIDENCE")
        if self.type in (MessageType.DOCUMENT, MessageType.FORWARD):
            raise NoticeError("a document is not a notice")
        if self.type is MessageType.ESCALATE:
            raise NoticeError("a 督办 travels as an Escalation, not a Notice", code="NOTICE_TYPE_MISMATCH")
        if not (self.doc_id is None and self.type is MessageType.BOUNCE):  # a relay's bounce has none
            try:
                check_doc_id(self.doc_id, "doc_id")
            except ProtocolError as exc:  # a notice about an id no route could address concerns nothing of ours
                raise NoticeError(f"notice: {exc.message}", code="NOTICE_BAD_DOC_ID") from None
        if self.type is MessageType.RETURN and not (self.reason or "").strip():
            raise NoticeError("退回 needs a reason", code="NOTICE_REASON_REQUIRED")
        if self.type in (MessageType.RECEIPT, MessageType.RETURN) and not (self.by or "").strip():
            raise NoticeError("签收/退回 needs the person who acted", code="NOTICE_BY_REQUIRED")
        if self.type is MessageType.FORWARDED:
            if not self.units:
                raise NoticeError("a 转发告知 names the units forwarded to", code="NOTICE_BAD_FORWARD")
            try:
                check_doc_id(self.text, "text")
            except ProtocolError as exc:
                raise NoticeError(f"a 转发告知 names its cover 通知: {exc.message}", code="NOTICE_BAD_FORWARD") from None
        for name in ("by", "reason", "text"):
            value = getattr(self, name)
            if value is not None and len(value) > MAX_TEXT:
                raise NoticeError(f"notice {name} longer than {MAX_TEXT} characters")
        if self.at.tzinfo is None:
            raise NoticeError("notice time must be timezone-aware")
        if len(set(self.units)) != len(self.units):
            raise NoticeError("a notice names a unit twice", code="NOTICE_DUPLICATE_UNIT")

    def encode(self) -> bytes:
        return canonical_json({"v": 1, "type": self.type.value, "doc_id": self.doc_id, **_entry(self)})


def _entry(notice: Notice) -> dict[str, Any]:
    """What each notice of a batch says on its own (the type and the document are the batch's)."""
    entry = {"units": list(notice.units), "by": notice.by, "at": format_time(notice.at),
             "reason": notice.reason, "text": notice.text}
    if notice.evidence is not None:  # only then: a notice without it is byte for byte what it always was
        entry[EVIDENCE] = base64.b64encode(notice.evidence).decode("ascii")
    return entry


@functools.lru_cache(maxsize=2 * MAX_BATCH)
def _entry_bytes(notice: Notice) -> bytes:
    """A batch entry encoded, kept for the batch encoded right after it was packed (:func:`pack_notices`
    sizes each entry; :func:`encode_notices` then uses the same bytes, its statement not encoded twice)."""
    return canonical_json(_entry(notice))


def _batch_bytes(first: Notice, entries: Sequence[bytes]) -> bytes:
    """The canonical JSON of a batch of ``first``'s type and document whose entries are already
    encoded: its four keys in their sorted order, compact — ``canonical_json`` of the whole, byte for
    byte (tests/exchange_protocol check it), without walking the entries again."""
    return b"".join((b'{"doc_id":', canonical_json(first.doc_id), b',"notices":[', b",".join(entries),
                     b'],"type":', canonical_json(first.type.value), b',"v":2}'))


def encode_notices(notices: Sequence[Notice]) -> bytes:
    """One notice as version 1; several, of one batchable type about one document, as a batch."""
    if len(notices) == 1:
        return notices[0].encode()
    _check_batch(notices)
    data = _batch_bytes(notices[0], [_entry_bytes(n) for n in notices])
    limit = payload_limit(notices)
    if len(data) > limit:
        raise NoticeError(f"a batch of {len(notices)} notices is {len(data)} bytes, more than the "
                          f"{limit} allowed", code="NOTICE_BATCH_TOO_LARGE", size=len(data))
    return data


def payload_limit(notices: Sequence[Notice]) -> int:
    """The bytes a payload of ``notices`` may take: more when they carry their statements."""
    return MAX_SIGNED_NOTICE_BYTES if any(n.evidence is not None for n in notices) else MAX_NOTICE_BYTES


def _check_batch(notices: Sequence[Notice]) -> None:
    if not notices:
        raise NoticeError("a batch holds no notice", code="NOTICE_BATCH_EMPTY")
    if len(notices) > MAX_BATCH:
        raise NoticeError(f"a batch holds {len(notices)} notices, more than the {MAX_BATCH} allowed",
                          code="NOTICE_BATCH_TOO_LARGE", count=len(notices))
    first = notices[0]
    if first.type not in BATCHABLE:
        raise NoticeError(f"{first.type.value} notices are not batched", code="NOTICE_NOT_BATCHABLE")
    if any(n.type is not first.type or n.doc_id != first.doc_id for n in notices):
        raise NoticeError("a batch mixes notices of different types or documents", code="NOTICE_BATCH_MIXED")
    seen: set[str] = set()
    for n in notices:
        twice = seen.intersection(n.units)
        if twice:
            raise NoticeError(f"a batch names unit {min(twice)} in two notices", code="NOTICE_DUPLICATE_UNIT",
                              unit=min(twice))
        seen.update(n.units)


def decode_notices(data: bytes) -> tuple[Notice, ...]:
    """The notices in a payload: one (version 1) or a batch (version 2); typed errors otherwise."""
    raw = _load(data)
    if raw.get("v") != 2:
        return _within_limit((_notice(raw),), data)
    if set(raw) != _BATCH_KEYS:
        raise NoticeError(f"notice batch keys differ: missing {sorted(_BATCH_KEYS - set(raw))}, "
                          f"unknown {sorted(set(raw) - _BATCH_KEYS)}")
    entries = raw["notices"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise NoticeError("notice batch entries must be a list of objects")
    if len(entries) > MAX_BATCH:  # before any entry is read
        raise NoticeError(f"a batch holds {len(entries)} notices, more than the {MAX_BATCH} allowed",
                          code="NOTICE_BATCH_TOO_LARGE", count=len(entries))
    for entry in entries:
        if set(entry) - {EVIDENCE} != _ENTRY_KEYS:
            raise NoticeError(f"notice batch entry keys differ: missing {sorted(_ENTRY_KEYS - set(entry))}, "
                              f"unknown {sorted(set(entry) - _ENTRY_KEYS - {EVIDENCE})}")
    notices = tuple(_notice({"v": 1, "type": raw["type"], "doc_id": raw["doc_id"], **entry}) for entry in entries)
    _check_batch(notices)
    return _within_limit(notices, data)


def _within_limit(notices: tuple[Notice, ...], data: bytes) -> tuple[Notice, ...]:
    if len(data) > payload_limit(notices):  # only statements earn a payload more than MAX_NOTICE_BYTES
        raise NoticeError(f"a notice payload of {len(data)} bytes without statements is more than the "
                          f"{MAX_NOTICE_BYTES} allowed", code="NOTICE_BATCH_TOO_LARGE", size=len(data))
    return notices


def decode_notice(data: bytes) -> Notice:
    """One notice (version 1): what a bounce or a recall carries; a batch here is a typed error."""
    return _within_limit((_notice(_load(data)),), data)[0]


def _load(data: bytes) -> dict[str, Any]:
    raw = load_json(data, max_bytes=MAX_SIGNED_NOTICE_BYTES, what="notice", error=NoticeError)
    if not isinstance(raw, dict):
        raise NoticeError("notice must be a JSON object")
    return raw


def _notice(raw: dict[str, Any]) -> Notice:
    if set(raw) - {EVIDENCE} != _KEYS:
        raise NoticeError(f"notice keys differ: missing {sorted(_KEYS - set(raw))}, "
                          f"unknown {sorted(set(raw) - _KEYS - {EVIDENCE})}")
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
    return Notice(kind, raw["doc_id"], codes, at, raw["by"], raw["reason"], raw["text"], _evidence(raw))


def _evidence(raw: dict[str, Any]) -> bytes | None:
    if EVIDENCE not in raw:
        return None
    text = raw[EVIDENCE]
    if not isinstance(text, str) or len(text) > MAX_EVIDENCE * 4 // 3 + 4:
        raise NoticeError("a notice's evidence must be base64 text of a statement", code="NOTICE_BAD_EVIDENCE")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoticeError("a notice's evidence is not base64", code="NOTICE_BAD_EVIDENCE") from None


def batch_key(header: HeaderDraft) -> tuple[Any, ...] | None:
    """What drafts must share to travel in one batch (None: this one travels alone): the
    destination, a batchable type, the answered message and the addressed units."""
    if header.type not in BATCHABLE:
        return None
    return header.destination_node, header.type, header.in_reply_to, header.to_units


def pack_notices(notices: Sequence[Notice], max_bytes: int | None = None,
                 max_count: int = MAX_BATCH) -> list[tuple[Notice, ...]]:
    """``notices`` (one batchable type, one document) cut in order into as few runs as fit one
    payload each: at most ``max_count`` notices and ``max_bytes`` encoded (by default the payload
    limit: :func:`payload_limit`), no unit twice in a run. A notice that fits no batch by itself
    still gets its own run (version 1, as it always could)."""
    if max_bytes is None:  # one limit for the whole sequence: the smaller one unless statements travel
        max_bytes = payload_limit(notices)
    runs: list[tuple[Notice, ...]] = []
    run: list[Notice] = []
    units: set[str] = set()
    size = 0
    frame = len(_batch_bytes(notices[0], ())) if notices else 0  # one type, one document: one frame
    for notice in notices:
        entry = len(_entry_bytes(notice))
        if run and (len(run) >= max_count or units.intersection(notice.units)
                    or frame + size + entry + len(run) > max_bytes):  # entries and the commas between them
            runs.append(tuple(run))
            run, units, size = [], set(), 0
        run.append(notice)
        units.update(notice.units)
        size += entry
    if run:
        runs.append(tuple(run))
    return runs


def notice_dict(notice: Notice) -> dict[str, Any]:
    return {"type": notice.type.value, "doc_id": notice.doc_id, "units": list(notice.units),
            "by": notice.by, "at": notice.at.isoformat(), "reason": notice.reason, "text": notice.text}


# --- 督办 -----------------------------------------------------------------------------------------
_ESCALATION_KEYS = frozenset({"v", "type", "doc_id", "unit", "supervisor", "sent_by", "title", "deadline",
                              "escalated_at", "working_days_late", "settled_at", "settled_by", "settled_as"})
SETTLED_AS = ("signed_for", "returned", "recalled")
MAX_TITLE = 200


class EscalationError(NoticeError):
    code = "NOTICE_ESCALATION_INVALID"
    kind = ErrorKind.INVALID_INPUT


@dataclass(frozen=True)
class Escalation:
    """督办 of ``doc_id``: ``unit`` left it unsettled; ``supervisor`` is told (see the module header)."""

    doc_id: str
    unit: str
    supervisor: str
    sent_by: str
    title: str
    deadline: dt.datetime
    escalated_at: dt.datetime
    working_days_late: int
    settled_at: dt.datetime | None = None
    settled_by: str | None = None
    settled_as: str | None = None

    def __post_init__(self) -> None:
        try:
            check_doc_id(self.doc_id, "doc_id")
        except ProtocolError as exc:
            raise EscalationError(f"督办: {exc.message}") from None
        for name in ("unit", "supervisor", "sent_by"):
            try:
                validate_unit_code(getattr(self, name))
            except InvalidUnitCode as exc:
                raise EscalationError(f"督办 {name}: {exc.message}") from None
        if self.unit == self.supervisor:
            raise EscalationError("督办: a unit does not supervise itself")
        if not isinstance(self.title, str) or not self.title.strip() or len(self.title) > MAX_TITLE:
            raise EscalationError(f"督办 title must be 1–{MAX_TITLE} characters")
        for name in ("deadline", "escalated_at", "settled_at"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, dt.datetime) or value.tzinfo is None):
                raise EscalationError(f"督办 {name} must be a timezone-aware time")
        if isinstance(self.working_days_late, bool) or not isinstance(self.working_days_late, int) \
                or not 0 <= self.working_days_late <= 100_000:
            raise EscalationError("督办 working_days_late must be a whole number of days, 0 or more")
        settled = (self.settled_at, self.settled_by, self.settled_as)
        if any(v is not None for v in settled) and not all(v is not None for v in settled):
            raise EscalationError("督办: settled_at, settled_by and settled_as go together")
        if self.settled_as is not None and self.settled_as not in SETTLED_AS:
            raise EscalationError(f"督办 settled_as must be one of {', '.join(SETTLED_AS)}")
        if self.settled_by is not None and (not isinstance(self.settled_by, str) or not self.settled_by.strip()
                                            or len(self.settled_by) > MAX_TEXT):
            raise EscalationError(f"督办 settled_by must be 1–{MAX_TEXT} characters")

    @property
    def settled(self) -> bool:
        return self.settled_at is not None

    def check_header(self, header: HeaderDraft) -> None:
        """The envelope says what the payload says: from the late unit, to its supervisor alone."""
        if header.type is not MessageType.ESCALATE or header.from_unit != self.unit \
                or tuple(header.to_units) != (self.supervisor,):
            raise EscalationError(f"a {header.type.value} envelope from {header.from_unit} to {list(header.to_units)} "
                                  f"carries a 督办 about {self.unit} for {self.supervisor}")

    def encode(self) -> bytes:
        return canonical_json({
            "v": 1, "type": MessageType.ESCALATE.value, "doc_id": self.doc_id, "unit": self.unit,
            "supervisor": self.supervisor, "sent_by": self.sent_by, "title": self.title,
            "deadline": format_time(self.deadline), "escalated_at": format_time(self.escalated_at),
            "working_days_late": self.working_days_late,
            "settled_at": None if self.settled_at is None else format_time(self.settled_at),
            "settled_by": self.settled_by, "settled_as": self.settled_as})


def decode_escalation(data: bytes) -> Escalation:
    """An :class:`Escalation` from untrusted payload bytes; typed errors otherwise."""
    raw = _load(data)
    if set(raw) != _ESCALATION_KEYS:
        raise EscalationError(f"督办 keys differ: missing {sorted(_ESCALATION_KEYS - set(raw))}, "
                              f"unknown {sorted(set(raw) - _ESCALATION_KEYS)}")
    if raw["v"] != 1 or raw["type"] != MessageType.ESCALATE.value:
        raise EscalationError(f"not a version 1 督办: v={raw['v']!r}, type={raw['type']!r}")
    for key in ("doc_id", "unit", "supervisor", "sent_by", "title", "deadline", "escalated_at"):
        if not isinstance(raw[key], str):
            raise EscalationError(f"督办 {key} must be a string")
    for key in ("settled_at", "settled_by", "settled_as"):
        if raw[key] is not None and not isinstance(raw[key], str):
            raise EscalationError(f"督办 {key} must be a string or null")
    return Escalation(raw["doc_id"], raw["unit"], raw["supervisor"], raw["sent_by"], raw["title"],
                      _time(raw["deadline"]), _time(raw["escalated_at"]), raw["working_days_late"],
                      None if raw["settled_at"] is None else _time(raw["settled_at"]), raw["settled_by"],
                      raw["settled_as"])


def _time(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise EscalationError(f"督办 time {text!r} is not YYYY-MM-DDTHH:MM:SSZ") from None
