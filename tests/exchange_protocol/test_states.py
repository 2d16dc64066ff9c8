"""The per-recipient lifecycle: every (state, event) pair of both tables, and the rows built on them."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from exchange_protocol.errors import (
    ConflictingDuplicate,
    EventDataMissing,
    IllegalTransition,
    InvalidRecipientRow,
)
from exchange_protocol.kinds import Role
from exchange_protocol.states import (
    EVENT_WORDS,
    OVERDUE_LABEL,
    Event,
    ReceiverStatus,
    RecipientRow,
    SenderStatus,
    allowed_events,
    is_overdue,
    transition,
)

S, R, E = SenderStatus, ReceiverStatus, Event
UNIT = "91350100M000100Y43"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone(timedelta(hours=8)))

# The expected behaviour, written out independently of the module's tables: for each state, the events
# accepted and where they lead. Everything else must raise IllegalTransition.
SENDER_EXPECTED = {
    S.QUEUED: {E.SENT: S.SENT, E.DELIVERED: S.DELIVERED, E.SIGNED_FOR: S.SIGNED_FOR, E.RETURNED: S.RETURNED,
               E.RECALLED: S.RECALLED, E.FAILED: S.FAILED},
    S.SENT: {E.SENT: S.SENT, E.DELIVERED: S.DELIVERED, E.SIGNED_FOR: S.SIGNED_FOR, E.RETURNED: S.RETURNED,
             E.RECALLED: S.RECALLED, E.FAILED: S.FAILED, E.URGED: S.SENT},
    S.DELIVERED: {E.SENT: S.DELIVERED, E.DELIVERED: S.DELIVERED, E.SIGNED_FOR: S.SIGNED_FOR,
                  E.RETURNED: S.RETURNED, E.RECALLED: S.RECALLED, E.URGED: S.DELIVERED},
    S.SIGNED_FOR: {E.SENT: S.SIGNED_FOR, E.DELIVERED: S.SIGNED_FOR, E.SIGNED_FOR: S.SIGNED_FOR},
    S.RETURNED: {E.SENT: S.RETURNED, E.DELIVERED: S.RETURNED, E.RETURNED: S.RETURNED},
    S.RECALLED: {E.SENT: S.RECALLED, E.DELIVERED: S.RECALLED, E.FAILED: S.RECALLED, E.RECALLED: S.RECALLED,
                 E.SIGNED_FOR: S.SIGNED_FOR, E.RETURNED: S.RETURNED},
    # We gave up on an envelope the receiver may still have got: its word (delivered, 签收, 退回) wins.
    S.FAILED: {E.FAILED: S.FAILED, E.DELIVERED: S.DELIVERED, E.SIGNED_FOR: S.SIGNED_FOR, E.RETURNED: S.RETURNED},
}
RECEIVER_EXPECTED = {
    R.PENDING: {E.SIGNED_FOR: R.SIGNED_FOR, E.RETURNED: R.RETURNED, E.RECALLED: R.RECALLED, E.URGED: R.PENDING},
    R.SIGNED_FOR: {E.SIGNED_FOR: R.SIGNED_FOR, E.REGISTERED: R.REGISTERED, E.URGED: R.SIGNED_FOR},
    R.REGISTERED: {E.SIGNED_FOR: R.REGISTERED, E.REGISTERED: R.REGISTERED, E.URGED: R.REGISTERED},
    R.RETURNED: {E.RETURNED: R.RETURNED, E.URGED: R.RETURNED},
    R.RECALLED: {E.RECALLED: R.RECALLED, E.URGED: R.RECALLED},
}
ALL_PAIRS = [(s, e, SENDER_EXPECTED) for s, e in itertools.product(SenderStatus, Event)] + \
            [(s, e, RECEIVER_EXPECTED) for s, e in itertools.product(ReceiverStatus, Event)]


@pytest.mark.parametrize(("state", "event", "expected"), ALL_PAIRS,
                         ids=[f"{s.__class__.__name__[:-6]}-{s.value}-{e.value}" for s, e, _ in ALL_PAIRS])
def test_every_pair(state, event, expected) -> None:
    target = expected[state].get(event)
    if target is None:
        with pytest.raises(IllegalTransition) as info:
            transition(state, event)
        assert info.value.code == "STATE_ILLEGAL_TRANSITION"
        assert info.value.details["state"] == state.value and info.value.details["event"] == event.value
        assert state.label in info.value.message
        assert info.value.message.startswith(f"{EVENT_WORDS[event]} ({event.value}) is not allowed")  # a clerk's word
    else:
        assert transition(state, event) is target
    assert (event in allowed_events(state)) == (target is not None)


def test_recall_is_refused_after_sign_for_on_both_sides() -> None:
    for state in (S.SIGNED_FOR, R.SIGNED_FOR, R.REGISTERED):
        with pytest.raises(IllegalTransition):
            transition(state, E.RECALLED)


def test_events_of_one_side_are_illegal_on_the_other() -> None:
    for event in (E.SENT, E.DELIVERED, E.FAILED):
        with pytest.raises(IllegalTransition):
            transition(R.PENDING, event)
    with pytest.raises(IllegalTransition):
        transition(S.SIGNED_FOR, E.REGISTERED)


def test_labels_are_the_chinese_a_clerk_reads() -> None:
    assert [s.label for s in SenderStatus] == ["待发送", "已发送", "已送达", "已签收", "已退回", "已撤回", "发送失败"]
    assert [s.label for s in ReceiverStatus] == ["待签收", "已签收", "已登记", "已退回", "已撤回"]
    assert OVERDUE_LABEL == "已超期"


def outgoing() -> RecipientRow:
    return RecipientRow.outgoing(UNIT, Role.MAIN)


def test_a_document_followed_to_sign_for() -> None:
    row = outgoing().apply(E.SENT, at=T0).apply(E.DELIVERED, at=T0 + timedelta(seconds=2))
    row = row.apply(E.URGED, at=T0 + timedelta(hours=1)).apply(E.URGED, at=T0 + timedelta(hours=2))
    row = row.apply(E.SIGNED_FOR, at=T0 + timedelta(hours=3), by="王收发")
    assert (row.status, row.label, row.who, row.when) == (S.SIGNED_FOR, "已签收", "王收发", T0 + timedelta(hours=3))
    assert row.urge_count == 2 and row.last_urged_at == T0 + timedelta(hours=2)
    assert row.role is Role.MAIN and row.unit == UNIT


def test_rows_are_values() -> None:
    row = outgoing()
    sent = row.apply(E.SENT, at=T0)
    assert row.status is S.QUEUED and sent.status is S.SENT
    with pytest.raises(AttributeError):
        sent.status = S.FAILED  # type: ignore[misc]


def test_the_same_sign_for_twice_is_one_sign_for() -> None:
    signed = outgoing().apply(E.DELIVERED, at=T0).apply(E.SIGNED_FOR, at=T0 + timedelta(minutes=5), by="王收发")
    again = signed.apply(E.SIGNED_FOR, at=T0 + timedelta(minutes=9), by="王收发")
    assert again == signed  # the first time recorded stands


def test_a_second_sign_for_by_someone_else_is_a_contradiction() -> None:
    signed = outgoing().apply(E.SIGNED_FOR, at=T0, by="王收发")
    with pytest.raises(ConflictingDuplicate) as info:
        signed.apply(E.SIGNED_FOR, at=T0, by="李收发")
    assert info.value.code == "STATE_CONFLICTING_DUPLICATE"
    assert isinstance(info.value, IllegalTransition)


def test_return_twice_same_reason_is_idempotent_other_reason_conflicts() -> None:
    returned = outgoing().apply(E.SENT, at=T0).apply(E.RETURNED, at=T0, reason="缺少附件")
    assert returned.apply(E.RETURNED, at=T0 + timedelta(minutes=1), reason="缺少附件") == returned
    assert returned.reason == "缺少附件"
    with pytest.raises(ConflictingDuplicate):
        returned.apply(E.RETURNED, at=T0, reason="非本单位业务")


def test_stale_news_leaves_the_row_alone() -> None:
    signed = outgoing().apply(E.SIGNED_FOR, at=T0, by="王收发")
    assert signed.apply(E.SENT, at=T0 + timedelta(seconds=1)) == signed
    assert signed.apply(E.DELIVERED, at=T0 + timedelta(seconds=1)) == signed


def test_sign_for_that_beat_the_recall_wins() -> None:
    recalled = outgoing().apply(E.DELIVERED, at=T0).apply(E.RECALLED, at=T0 + timedelta(minutes=1))
    assert recalled.label == "已撤回"
    signed = recalled.apply(E.SIGNED_FOR, at=T0 + timedelta(seconds=30), by="王收发")
    assert signed.status is S.SIGNED_FOR and signed.who == "王收发"


def test_urges_count_each_time_and_are_refused_once_settled() -> None:
    row = outgoing().apply(E.SENT, at=T0)
    for i in range(3):
        row = row.apply(E.URGED, at=T0 + timedelta(hours=i + 1))
    assert row.urge_count == 3 and row.status is S.SENT
    with pytest.raises(IllegalTransition):
        outgoing().apply(E.URGED, at=T0)
    for settled in (row.apply(E.SIGNED_FOR, at=T0, by="王"), row.apply(E.RETURNED, at=T0, reason="错发"),
                    row.apply(E.RECALLED, at=T0), row.apply(E.FAILED, at=T0)):
        with pytest.raises(IllegalTransition):
            settled.apply(E.URGED, at=T0)


def test_receiver_row_lifecycle_and_incoming_urge() -> None:
    row = RecipientRow.incoming(UNIT, Role.COPY)
    assert row.label == "待签收"
    row = row.apply(E.URGED, at=T0)
    assert row.urge_count == 1 and row.status is R.PENDING
    row = row.apply(E.SIGNED_FOR, at=T0, by="王收发").apply(E.REGISTERED, at=T0, by="李登记")
    assert (row.label, row.who) == ("已登记", "李登记")
    assert row.apply(E.URGED, at=T0) == row  # an urge that crossed the 签收 on the way
    with pytest.raises(IllegalTransition):
        row.apply(E.RECALLED, at=T0)
    with pytest.raises(IllegalTransition):
        RecipientRow.incoming(UNIT, Role.MAIN).apply(E.REGISTERED, at=T0)  # 登记 needs 签收 first


@pytest.mark.parametrize(("event", "kwargs", "field"), [
    (E.SIGNED_FOR, {}, "by"),
    (E.SIGNED_FOR, {"by": "  "}, "by"),
    (E.RETURNED, {}, "reason"),
    (E.RETURNED, {"reason": ""}, "reason"),
])
def test_events_must_carry_their_facts(event, kwargs, field) -> None:
    with pytest.raises(EventDataMissing) as info:
        outgoing().apply(event, at=T0, **kwargs)
    assert info.value.details["field"] == field


def test_event_time_must_be_aware() -> None:
    with pytest.raises(EventDataMissing):
        outgoing().apply(E.SENT, at=datetime(2026, 11, 20, 9, 0))


def test_rows_refuse_bad_unit_codes() -> None:
    with pytest.raises(InvalidRecipientRow) as info:
        RecipientRow.outgoing("91350100M000100Y44", Role.MAIN)
    assert info.value.code == "STATE_INVALID_ROW"


def test_overdue_is_derived_from_deadline_and_now() -> None:
    deadline = T0 + timedelta(days=1)
    row = outgoing().apply(E.DELIVERED, at=T0)
    assert not row.is_overdue(deadline, deadline)
    assert row.is_overdue(deadline, deadline + timedelta(seconds=1))
    assert not row.is_overdue(None, deadline + timedelta(days=100))
    late = deadline + timedelta(hours=1)
    assert not row.apply(E.SIGNED_FOR, at=T0, by="王").is_overdue(deadline, late)
    assert not row.apply(E.RETURNED, at=T0, reason="错发").is_overdue(deadline, late)
    assert not row.apply(E.RECALLED, at=T0).is_overdue(deadline, late)
    assert outgoing().apply(E.FAILED, at=T0).is_overdue(deadline, late)
    assert is_overdue(R.PENDING, deadline, late) and not is_overdue(R.REGISTERED, deadline, late)
