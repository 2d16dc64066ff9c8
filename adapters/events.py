"""What adapters are told: audit-log entries turned into adapter events, by ONE table.

The journal adapters follow is the node's audit log (:mod:`node.store.sqlite.audit`): every state
change appends its event in the same transaction as the change, so following the log by ``seq``
misses nothing and adds nothing to the hot path. :data:`EVENT_TYPES` below is the only place that
says which audit action is which adapter event and for which unit; nothing else in ``adapters``
names an audit action.

An :class:`AdapterEvent` is ``(seq, type, unit, doc_id, at, data, event_id)``:

* ``type`` — one of :data:`TYPES` (``document.received``, ``document.signed_for``, …);
* ``unit`` — the unit the event is FOR: a received, registered, recalled, urged or overdue document
  → the receiving unit; a 督办 (``document.escalated``) → both the late unit (``supervisor`` in data)
  and, as an event of its own, the supervising unit (``late_unit`` in data); 签收, 退回 or a failed delivery of something a unit sent → the SENDING unit, with
  the recipient unit in ``data["recipient"]``;
* ``doc_id`` — the 公文标识;
* ``at`` — when the change was committed (the audit event's time, aware UTC);
* ``data`` — the facts a receiver needs without asking back (title, kind, sender, recipient,
  who signed, the reason …), plain JSON values;
* ``event_id`` — ``<node id>-<incarnation>-<seq>``: stable for ever, so every attempt to deliver
  the event carries the same id and a receiver de-duplicates on it (with the 公文标识). The
  incarnation (8 random hex digits drawn when the node's database was made) tells apart the lives
  of a node id: a node made again under the same id (``--replace``) starts its seqs at 1 again.

Change from the first sketch in ISSUE9.md: ``event_id`` is a field (last, so the six named there
keep their order), because the node id it derives from is not known to a consumer otherwise.

Pure: no I/O, no clock, no asyncio; :mod:`adapters.outbox` feeds it what the store read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pki.errors import ErrorKind, GwxError

RECEIVED = "document.received"
SIGNED_FOR = "document.signed_for"
RETURNED = "document.returned"
REGISTERED = "document.registered"
RECALLED = "document.recalled"
URGED = "document.urged"
DELIVERY_FAILED = "delivery.failed"
OVERDUE = "document.overdue"  # past its 办理时限, not signed for (node.supervision)
ESCALATED = "document.escalated"  # 督办: escalated to the supervising unit
SUPERVISION_SETTLED = "document.supervision_settled"  # a 督办 the supervising unit holds has ended

# Audit action → (adapter event type, whose event it is). "receiver": the unit named in the audit
# event's subjects (the unit whose inbox row changed). "sender": the unit that sent the document
# (an outbox recipient row changed; its unit is the recipient, reported in data["recipient"]).
# The receiving unit's own 签收/退回 (inbox.signed_for, inbox.returned) are not here: the unit did
# them itself; what its OA needs to hear is what others did.
EVENT_TYPES: dict[str, tuple[str, str]] = {
    "inbox.add": (RECEIVED, "receiver"),
    "inbox.registered": (REGISTERED, "receiver"),
    "inbox.recalled": (RECALLED, "receiver"),
    "inbox.urged": (URGED, "receiver"),
    "recipient.signed_for": (SIGNED_FOR, "sender"),
    "recipient.returned": (RETURNED, "sender"),
    "recipient.failed": (DELIVERY_FAILED, "sender"),
    # 督办 (node.supervision): the late unit hears it is overdue, then that it was escalated; the
    # supervising unit hears of the escalation (its audit event names it as the unit).
    "inbox.overdue": (OVERDUE, "receiver"),
    "inbox.escalated": (ESCALATED, "receiver"),
    "supervision.escalated": (ESCALATED, "receiver"),
    "supervision.settled": (SUPERVISION_SETTLED, "receiver"),  # signed for, returned or recalled
}
TYPES: tuple[str, ...] = tuple(dict.fromkeys(t for t, _ in EVENT_TYPES.values()))
ACTIONS: tuple[str, ...] = tuple(EVENT_TYPES)

# Facts copied from the audit event's details into data, by the name a receiver sees.
_DETAIL_NAMES = {"who": "by", "signed_by": "by", "reason": "reason", "return_reason": "reason",
                 "from_unit": "from_unit", "kind": "kind", "message_id": "message_id",
                 "urge_count": "urge_count", "deadline": "deadline", "supervisor": "supervisor",
                 "late_unit": "late_unit", "working_days_late": "working_days_late", "title": "title",
                 "escalated_at": "escalated_at", "by": "by", "settled_as": "settled_as"}


class BadAdapterEvent(GwxError):
    """Stored event text that is not an adapter event (a row edited by hand, a newer gwx's)."""

    code = "ADAPTER_EVENT_INVALID"
    kind = ErrorKind.INVALID_INPUT


@dataclass(frozen=True)
class AdapterEvent:
    seq: int
    type: str
    unit: str
    doc_id: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    event_id: str = ""

    def to_json(self) -> dict[str, Any]:
        """The event as a receiver sees it (webhook body, event file, stored outbox row)."""
        return {"event_id": self.event_id, "type": self.type, "unit": self.unit, "doc_id": self.doc_id,
                "at": self.at.isoformat().replace("+00:00", "Z"), "seq": self.seq, "data": dict(self.data)}

    def to_text(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, value: Any) -> AdapterEvent:
        try:
            if isinstance(value, str):
                value = json.loads(value)
            at = datetime.fromisoformat(value["at"].replace("Z", "+00:00"))
            if at.utcoffset() is None or value["type"] not in TYPES or not isinstance(value["data"], dict):
                raise ValueError("naive time, unknown type or data not an object")
            return cls(seq=int(value["seq"]), type=value["type"], unit=str(value["unit"]),
                       doc_id=str(value["doc_id"]), at=at, data=value["data"], event_id=str(value["event_id"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadAdapterEvent(f"not an adapter event: {exc}", error=str(exc)) from None


def make_event_id(node_id: str, seq: int, incarnation: str) -> str:
    return f"{node_id}-{incarnation}-{seq}"


def adapter_event(node_id: str, seq: int, at: datetime, action: str, subjects: Mapping[str, Any],
                  details: Mapping[str, Any], *, sent_by: str | None = None,
                  title: str | None = None, incarnation: str = "0") -> AdapterEvent | None:
    """The adapter event an audit event means, or None (most audit events concern no adapter).

    ``sent_by`` is the unit that sent the document (the store reads it beside the audit event; the
    audit event of a recipient row names only the recipient), ``title`` its title."""
    mapped = EVENT_TYPES.get(action)
    doc_id, subject_unit = subjects.get("doc_id"), subjects.get("unit")
    if mapped is None or not doc_id or not subject_unit:
        return None
    type_, side = mapped
    data: dict[str, Any] = {_DETAIL_NAMES[k]: v for k, v in details.items() if k in _DETAIL_NAMES and v is not None}
    if title is not None:
        data["title"] = title
    if side == "sender":
        if not sent_by:
            return None  # a recipient row of a document this node no longer knows: nobody to tell
        unit = sent_by
        data["recipient"] = subject_unit
    else:
        unit = subject_unit
        if sent_by and "from_unit" not in data:
            data["from_unit"] = sent_by
    return AdapterEvent(seq=seq, type=type_, unit=unit, doc_id=doc_id, at=at, data=data,
                        event_id=make_event_id(node_id, seq, incarnation))
