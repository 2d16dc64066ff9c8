"""Per-recipient lifecycle of a 公文: the transition tables, and frozen rows that follow them.

This module is the one place that decides which event may move a recipient row where. The rules:

Sender side — one row per recipient unit (主送 / 抄送), starting ``queued``:
  queued → sent (the destination node's transport receipt) → delivered (in the unit's inbox)
         → signed_for (签收: who and when);
  or returned (退回, with a reason), recalled (撤回, only before 签收), failed (bounced after the retry
  window, only before delivery). 催办 (urge) is allowed while sent or delivered: it counts and keeps
  the time, never changes the status. ``overdue`` is not a state: :func:`is_overdue` derives it from
  the 办理时限 and the time passed in.
Receiver side — one row per document in a unit's inbox, starting ``pending`` (待签收):
  pending → signed_for (已签收) → registered (已登记); pending → returned (已退回);
  pending → recalled (已撤回, the sender's recall arrived first). An incoming 催办 counts on the row.

Messages travel at least once and may overtake each other on the way (relays, retries), so:
- Skipping ahead is allowed: a 签收 receipt may arrive before the delivery notice, or even before the
  transport receipt of a lost acknowledgement; the later fact implies the earlier ones.
- A DUPLICATE (the same event again in the state it produced) leaves the row unchanged: the same
  签收 delivered twice is one 签收, and the first time recorded stands. If the repeated event
  carries different facts — 签收 by another person, 退回 with another reason — it is not a duplicate
  but a contradiction and raises :class:`ConflictingDuplicate`.
- A STALE event (news of an earlier stage, e.g. the transport receipt arriving after the 签收) is
  absorbed: row unchanged. After a recall the transport's news (sent, delivered, failed) is stale too.
- After ``failed`` (the sender gave up on an envelope), news from the receiver that it has the
  document — delivered, 签收, 退回 — is the fact and moves the row on.
- Race with recall: the receiver is the authority on what happened to the document it holds. If its
  签收 or 退回 happened before the recall reached it, the receiver refuses the recall (pending is
  gone) and its receipt wins on the sender side: recalled → signed_for and recalled → returned.
- 催办 is never deduplicated here: each urge is a clerk's deliberate act (message ids deduplicate
  the wire). On the receiver side an urge that arrives after 签收/退回/撤回 is stale.
Everything not in a table raises :class:`IllegalTransition` (code STATE_ILLEGAL_TRANSITION) naming
the state and the event. Status values are English words (stored, sent in receipts); ``.label`` is
the Chinese a clerk reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from types import MappingProxyType

from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

from .errors import ConflictingDuplicate, EventDataMissing, IllegalTransition, InvalidRecipientRow
from .kinds import Role


class SenderStatus(Enum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    SIGNED_FOR = "signed_for"
    RETURNED = "returned"
    RECALLED = "recalled"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return _SENDER_LABELS[self]


class ReceiverStatus(Enum):
    PENDING = "pending"
    SIGNED_FOR = "signed_for"
    REGISTERED = "registered"
    RETURNED = "returned"
    RECALLED = "recalled"

    @property
    def label(self) -> str:
        return _RECEIVER_LABELS[self]


_SENDER_LABELS = {
    SenderStatus.QUEUED: "待发送", SenderStatus.SENT: "已发送", SenderStatus.DELIVERED: "已送达",
    SenderStatus.SIGNED_FOR: "已签收", SenderStatus.RETURNED: "已退回", SenderStatus.RECALLED: "已撤回",
    SenderStatus.FAILED: "发送失败",  # bounced after the retry window: the same word as Event.FAILED's
}
_RECEIVER_LABELS = {
    ReceiverStatus.PENDING: "待签收", ReceiverStatus.SIGNED_FOR: "已签收", ReceiverStatus.REGISTERED: "已登记",
    ReceiverStatus.RETURNED: "已退回", ReceiverStatus.RECALLED: "已撤回",
}
OVERDUE_LABEL = "已超期"

Status = SenderStatus | ReceiverStatus


class Event(Enum):
    SENT = "sent"                # transport receipt from the destination node
    DELIVERED = "delivered"      # placed in the recipient unit's inbox
    SIGNED_FOR = "signed_for"    # 签收
    RETURNED = "returned"        # 退回
    RECALLED = "recalled"        # 撤回
    FAILED = "failed"            # bounced after the retry window
    URGED = "urged"              # 催办
    REGISTERED = "registered"    # 登记 (receiver side)


# What a clerk calls each event (an illegal one is refused naming it so: "签收 (signed_for) is not allowed …").
EVENT_WORDS: Mapping[Event, str] = MappingProxyType({
    Event.SENT: "发送", Event.DELIVERED: "送达", Event.SIGNED_FOR: "签收", Event.RETURNED: "退回",
    Event.RECALLED: "撤回", Event.FAILED: "发送失败", Event.URGED: "催办", Event.REGISTERED: "登记"})


class Effect(Enum):
    CHANGE = "change"            # a new status, with the event's facts
    DUPLICATE = "duplicate"      # the same event again: facts must match, row unchanged
    STALE = "stale"              # news of an earlier stage: row unchanged
    COUNT = "count"              # 催办: status unchanged, urge counted


@dataclass(frozen=True)
class Step:
    target: Status
    effect: Effect


def _table(rows: dict[tuple[Status, Event], tuple[Status, Effect]]) -> Mapping[tuple[Status, Event], Step]:
    return MappingProxyType({k: Step(*v) for k, v in rows.items()})


S, R, E = SenderStatus, ReceiverStatus, Event
CHANGE, DUP, STALE, COUNT = Effect.CHANGE, Effect.DUPLICATE, Effect.STALE, Effect.COUNT

SENDER_TRANSITIONS = _table({
    (S.QUEUED, E.SENT): (S.SENT, CHANGE),
    (S.SENT, E.SENT): (S.SENT, DUP),
    (S.DELIVERED, E.SENT): (S.DELIVERED, STALE),
    (S.SIGNED_FOR, E.SENT): (S.SIGNED_FOR, STALE),
    (S.RETURNED, E.SENT): (S.RETURNED, STALE),
    (S.RECALLED, E.SENT): (S.RECALLED, STALE),

    (S.QUEUED, E.DELIVERED): (S.DELIVERED, CHANGE),
    (S.SENT, E.DELIVERED): (S.DELIVERED, CHANGE),
    (S.DELIVERED, E.DELIVERED): (S.DELIVERED, DUP),
    (S.SIGNED_FOR, E.DELIVERED): (S.SIGNED_FOR, STALE),
    (S.RETURNED, E.DELIVERED): (S.RETURNED, STALE),
    (S.RECALLED, E.DELIVERED): (S.RECALLED, STALE),

    (S.QUEUED, E.SIGNED_FOR): (S.SIGNED_FOR, CHANGE),
    (S.SENT, E.SIGNED_FOR): (S.SIGNED_FOR, CHANGE),
    (S.DELIVERED, E.SIGNED_FOR): (S.SIGNED_FOR, CHANGE),
    (S.RECALLED, E.SIGNED_FOR): (S.SIGNED_FOR, CHANGE),   # 签收 before the recall arrived: it wins
    (S.SIGNED_FOR, E.SIGNED_FOR): (S.SIGNED_FOR, DUP),

    (S.QUEUED, E.RETURNED): (S.RETURNED, CHANGE),
    (S.SENT, E.RETURNED): (S.RETURNED, CHANGE),
    (S.DELIVERED, E.RETURNED): (S.RETURNED, CHANGE),
    (S.RECALLED, E.RETURNED): (S.RETURNED, CHANGE),       # 退回 before the recall arrived: it wins
    (S.RETURNED, E.RETURNED): (S.RETURNED, DUP),

    (S.QUEUED, E.RECALLED): (S.RECALLED, CHANGE),
    (S.SENT, E.RECALLED): (S.RECALLED, CHANGE),
    (S.DELIVERED, E.RECALLED): (S.RECALLED, CHANGE),
    (S.RECALLED, E.RECALLED): (S.RECALLED, DUP),

    (S.QUEUED, E.FAILED): (S.FAILED, CHANGE),
    (S.SENT, E.FAILED): (S.FAILED, CHANGE),
    (S.FAILED, E.FAILED): (S.FAILED, DUP),
    # Our side gave up (retry window, a stale CRL of ours refusing receipts…) but the receiver
    # says it has the document: its word is the fact.
    (S.FAILED, E.DELIVERED): (S.DELIVERED, CHANGE),
    (S.FAILED, E.SIGNED_FOR): (S.SIGNED_FOR, CHANGE),
    (S.FAILED, E.RETURNED): (S.RETURNED, CHANGE),
    (S.RECALLED, E.FAILED): (S.RECALLED, STALE),

    (S.SENT, E.URGED): (S.SENT, COUNT),
    (S.DELIVERED, E.URGED): (S.DELIVERED, COUNT),
})

RECEIVER_TRANSITIONS = _table({
    (R.PENDING, E.SIGNED_FOR): (R.SIGNED_FOR, CHANGE),
    (R.SIGNED_FOR, E.SIGNED_FOR): (R.SIGNED_FOR, DUP),
    (R.REGISTERED, E.SIGNED_FOR): (R.REGISTERED, STALE),

    (R.SIGNED_FOR, E.REGISTERED): (R.REGISTERED, CHANGE),
    (R.REGISTERED, E.REGISTERED): (R.REGISTERED, DUP),

    (R.PENDING, E.RETURNED): (R.RETURNED, CHANGE),
    (R.RETURNED, E.RETURNED): (R.RETURNED, DUP),

    (R.PENDING, E.RECALLED): (R.RECALLED, CHANGE),
    (R.RECALLED, E.RECALLED): (R.RECALLED, DUP),

    (R.PENDING, E.URGED): (R.PENDING, COUNT),
    (R.SIGNED_FOR, E.URGED): (R.SIGNED_FOR, STALE),
    (R.REGISTERED, E.URGED): (R.REGISTERED, STALE),
    (R.RETURNED, E.URGED): (R.RETURNED, STALE),
    (R.RECALLED, E.URGED): (R.RECALLED, STALE),
})

# overdue (red light) applies to rows still waiting for the recipient to act
_SETTLED = frozenset({S.SIGNED_FOR, S.RETURNED, S.RECALLED,
                      R.SIGNED_FOR, R.REGISTERED, R.RETURNED, R.RECALLED})


def step(state: Status, event: Event) -> Step:
    """The table entry for ``(state, event)``, or :class:`IllegalTransition`."""
    if isinstance(state, SenderStatus):
        table, side = SENDER_TRANSITIONS, "sender"
    elif isinstance(state, ReceiverStatus):
        table, side = RECEIVER_TRANSITIONS, "receiver"
    else:
        raise IllegalTransition(f"{state!r} is not a recipient status", state=repr(state),
                                event=getattr(event, "value", repr(event)))
    found = table.get((state, event)) if isinstance(event, Event) else None
    if found is None:
        name = event.value if isinstance(event, Event) else repr(event)
        said = f"{EVENT_WORDS[event]} ({name})" if isinstance(event, Event) else name
        raise IllegalTransition(f"{said} is not allowed on the {side} side in state {state.value} "
                                f"({state.label})", state=state.value, event=name, side=side)
    return found


def transition(state: Status, event: Event) -> Status:
    """The status after ``event`` in ``state`` (unchanged for duplicates, stale news and urges)."""
    return step(state, event).target


def allowed_events(state: Status) -> frozenset[Event]:
    """Events accepted in ``state`` (for showing a clerk which actions exist)."""
    table = SENDER_TRANSITIONS if isinstance(state, SenderStatus) else RECEIVER_TRANSITIONS
    return frozenset(e for (s, e) in table if s is state)


def is_settled(status: Status) -> bool:
    """Whether the recipient has finished with the document (no longer overdue, urged or recalled)."""
    return status in _SETTLED


def is_overdue(status: Status, deadline: datetime | None, now: datetime) -> bool:
    """Red light: the 办理时限 has passed and the recipient has not settled the document."""
    _aware(now, "now")
    if deadline is None:
        return False
    _aware(deadline, "deadline")
    return now > deadline and not is_settled(status)


def _aware(value: object, name: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise EventDataMissing(f"{name} must be a timezone-aware datetime", field=name)


_REQUIRES_BY = frozenset({E.SIGNED_FOR})
_REQUIRES_REASON = frozenset({E.RETURNED})


@dataclass(frozen=True, kw_only=True)
class RecipientRow:
    """One recipient of one document, on either side. ``who``/``when``/``reason`` describe the latest
    status change (签收人 and time after 签收, the reason after 退回); urges are counted separately."""

    unit: str
    role: Role
    status: Status
    who: str | None = None
    when: datetime | None = None
    reason: str | None = None
    urge_count: int = 0
    last_urged_at: datetime | None = None

    def __post_init__(self) -> None:
        try:
            norm = validate_unit_code(self.unit)
        except InvalidUnitCode as exc:
            raise InvalidRecipientRow(exc.message, field="unit") from None
        if norm != self.unit or not isinstance(self.role, Role) \
                or not isinstance(self.status, (SenderStatus, ReceiverStatus)) \
                or type(self.urge_count) is not int or self.urge_count < 0:
            raise InvalidRecipientRow(f"invalid recipient row for {self.unit!r}")

    @classmethod
    def outgoing(cls, unit: str, role: Role) -> RecipientRow:
        """A sender-side row, queued."""
        return cls(unit=unit, role=role, status=SenderStatus.QUEUED)

    @classmethod
    def incoming(cls, unit: str, role: Role) -> RecipientRow:
        """A receiver-side row, pending 签收."""
        return cls(unit=unit, role=role, status=ReceiverStatus.PENDING)

    @property
    def label(self) -> str:
        return self.status.label

    def apply(self, event: Event, *, at: datetime, by: str | None = None, reason: str | None = None
              ) -> RecipientRow:
        """The row after ``event`` (see the module docstring for duplicates and stale events)."""
        _aware(at, "at")
        if event in _REQUIRES_BY and not (isinstance(by, str) and by.strip()):
            raise EventDataMissing(f"{event.value} needs who did it (by)", field="by", event=event.value)
        if event in _REQUIRES_REASON and not (isinstance(reason, str) and reason.strip()):
            raise EventDataMissing(f"{event.value} needs a reason", field="reason", event=event.value)
        found = step(self.status, event)
        if found.effect is Effect.CHANGE:
            return replace(self, status=found.target, who=by, when=at, reason=reason)
        if found.effect is Effect.COUNT:
            last = at if self.last_urged_at is None else max(at, self.last_urged_at)
            return replace(self, urge_count=self.urge_count + 1, last_urged_at=last)
        if found.effect is Effect.DUPLICATE:
            self._check_same_facts(event, by, reason)
        return self

    def _check_same_facts(self, event: Event, by: str | None, reason: str | None) -> None:
        if event is E.SIGNED_FOR and by != self.who:
            raise ConflictingDuplicate(f"already signed for by {self.who}, now {by}: not the same 签收",
                                       state=self.status.value, event=event.value, recorded=self.who, new=by)
        if event is E.RETURNED and reason != self.reason:
            raise ConflictingDuplicate("already returned with another reason: not the same 退回",
                                       state=self.status.value, event=event.value)

    def is_overdue(self, deadline: datetime | None, now: datetime) -> bool:
        return is_overdue(self.status, deadline, now)
