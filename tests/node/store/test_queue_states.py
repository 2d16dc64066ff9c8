"""node.store.queue_states: the outbound queue's transition table, checked without a database."""

from __future__ import annotations

import pytest

from node.store import queue_states as qs
from node.store.queue_states import QueueEvent


def test_final_states_have_no_way_out() -> None:
    for event, move in qs.TRANSITIONS.items():
        assert not move.sources & qs.FINAL_STATES, event
        for state in qs.FINAL_STATES:
            with pytest.raises(qs.IllegalQueueMove):
                qs.next_state(state, event, attempts=3)


def test_every_unfinished_row_can_be_given_up_or_found_corrupt() -> None:
    for state in qs.UNFINISHED_STATES:
        assert qs.next_state(state, QueueEvent.BOUNCE) == qs.BOUNCED
        assert qs.next_state(state, QueueEvent.CORRUPT) == qs.CORRUPT
    with pytest.raises(qs.IllegalQueueMove):
        qs.next_state(qs.CORRUPT, QueueEvent.BOUNCE)


def test_only_waiting_rows_are_claimed_and_claiming_makes_them_active() -> None:
    assert set(qs.sources(QueueEvent.CLAIM)) == qs.WAITING_STATES == {qs.INCOMING, qs.DEFERRED}
    assert qs.next_state(qs.DEFERRED, QueueEvent.CLAIM, attempts=2) == qs.ACTIVE
    for state in (qs.ACTIVE, qs.HOLD, qs.CORRUPT):
        with pytest.raises(qs.IllegalQueueMove):
            qs.next_state(state, QueueEvent.CLAIM)


@pytest.mark.parametrize("event", [QueueEvent.RELEASE, QueueEvent.RESTART])
def test_back_to_waiting_depends_on_whether_the_row_was_ever_tried(event) -> None:
    [source] = qs.sources(event)
    assert qs.next_state(source, event, attempts=0) == qs.INCOMING
    assert qs.next_state(source, event, attempts=1) == qs.DEFERRED


def test_a_held_row_leaves_hold_only_when_released_sent_bounced_or_corrupt() -> None:
    leaving = {event for event, move in qs.TRANSITIONS.items() if qs.HOLD in move.sources}
    assert leaving == {QueueEvent.RELEASE, QueueEvent.SENT, QueueEvent.BOUNCE, QueueEvent.CORRUPT}
    with pytest.raises(qs.IllegalQueueMove):
        qs.next_state(qs.HOLD, QueueEvent.DEFER)


def test_a_failed_attempt_defers_and_a_receipt_settles() -> None:
    for state in (qs.INCOMING, qs.ACTIVE, qs.DEFERRED):
        assert qs.next_state(state, QueueEvent.DEFER, attempts=1) == qs.DEFERRED
        assert qs.next_state(state, QueueEvent.SENT) == qs.SENT


def test_every_state_incoming_included_is_reachable_and_sources_come_in_lifecycle_order() -> None:
    reachable = {qs.target(event, attempts) for event in QueueEvent for attempts in (0, 1)}
    assert reachable == set(qs.QUEUE_STATES)  # incoming too: a released, never-tried row
    for event in QueueEvent:
        assert list(qs.sources(event)) == sorted(qs.sources(event), key=qs.QUEUE_STATES.index)
    assert qs.UNFINISHED_STATES - {qs.ACTIVE} == qs.AT_REST_STATES
    assert qs.UNFINISHED_STATES - {qs.HOLD} == qs.EXPIRABLE_STATES


def test_the_schema_allows_exactly_the_states_of_the_table() -> None:
    from node.store.sqlite.migrations import _QUEUE_STATES

    assert tuple(s.strip("'") for s in _QUEUE_STATES.split(",")) == qs.QUEUE_STATES
