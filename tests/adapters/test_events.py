"""adapters.events: the one table from audit actions to adapter events, and the event's JSON form."""

from __future__ import annotations

import pytest

from adapters.events import (
    EVENT_TYPES,
    RECEIVED,
    SIGNED_FOR,
    TYPES,
    AdapterEvent,
    BadAdapterEvent,
    adapter_event,
)
from tests.adapters.support import U_A, U_B, U_SEND
from tests.support import T0


def test_received_is_for_the_receiving_unit_with_its_facts():
    event = adapter_event("node-a", 7, T0, "inbox.add", {"doc_id": "D1", "unit": U_A},
                          {"from_unit": U_SEND, "kind": "通知", "message_id": "m1"}, title="关于…的通知",
                          incarnation="5f2c09aa")
    assert event == AdapterEvent(7, RECEIVED, U_A, "D1", T0,
                                 {"from_unit": U_SEND, "kind": "通知", "message_id": "m1", "title": "关于…的通知"},
                                 "node-a-5f2c09aa-7")


def test_signed_for_is_for_the_sending_unit_naming_the_recipient():
    event = adapter_event("node-a", 9, T0, "recipient.signed_for", {"doc_id": "D1", "unit": U_A},
                          {"from": "delivered", "status": "signed_for", "who": "张三", "when": "x"},
                          sent_by=U_SEND, title="T")
    assert (event.type, event.unit, event.data["recipient"], event.data["by"]) == (SIGNED_FOR, U_SEND, U_A, "张三")
    # a recipient row whose document this node does not hold: nobody to tell
    assert adapter_event("node-a", 9, T0, "recipient.signed_for", {"doc_id": "D1", "unit": U_A}, {}) is None


def test_other_actions_are_no_events_and_the_table_is_complete():
    assert adapter_event("n", 1, T0, "queue.enqueue", {"message_id": "m"}, {}) is None
    assert adapter_event("n", 1, T0, "inbox.signed_for", {"doc_id": "D", "unit": U_A}, {}) is None
    assert set(TYPES) == {"document.received", "document.signed_for", "document.returned", "document.registered",
                          "document.recalled", "document.urged", "delivery.failed", "document.overdue",
                          "document.escalated", "document.supervision_settled"}
    assert len(EVENT_TYPES) == len(TYPES) + 1  # document.escalated: one for the late unit, one for its supervisor


def test_escalation_events_go_to_the_late_unit_and_to_its_supervisor():
    overdue = adapter_event("n", 1, T0, "inbox.overdue", {"doc_id": "D", "unit": U_A},
                            {"deadline": "2026-03-01T09:00:00+00:00", "from_unit": U_SEND}, title="T")
    assert (overdue.type, overdue.unit, overdue.data) == (
        "document.overdue", U_A, {"deadline": "2026-03-01T09:00:00+00:00", "from_unit": U_SEND, "title": "T"})
    late = adapter_event("n", 2, T0, "inbox.escalated", {"doc_id": "D", "unit": U_A},
                         {"supervisor": U_SEND, "working_days_late": 3}, title="T")
    assert (late.type, late.unit, late.data["supervisor"], late.data["working_days_late"]) == (
        "document.escalated", U_A, U_SEND, 3)
    told = adapter_event("n", 3, T0, "supervision.escalated", {"doc_id": "D", "unit": U_SEND},
                         {"late_unit": U_A, "from_unit": U_B, "title": "T", "working_days_late": 3}, title=None)
    assert (told.type, told.unit, told.data["late_unit"], told.data["from_unit"], told.data["title"]) == (
        "document.escalated", U_SEND, U_A, U_B, "T")


def test_json_round_trip_and_refusals():
    event = adapter_event("node-a", 7, T0, "inbox.add", {"doc_id": "D1", "unit": U_A}, {}, title="标题")
    assert AdapterEvent.from_json(event.to_text()) == event
    assert event.to_json()["at"] == "2026-03-02T08:00:00Z"
    for bad in ("not json", "{}", '{"seq": 1, "type": "x", "unit": "u", "doc_id": "d", "at": "2026-03-02T08:00:00Z",'
                                  ' "data": {}, "event_id": "e"}'):
        with pytest.raises(BadAdapterEvent) as info:
            AdapterEvent.from_json(bad)
        assert info.value.code == "ADAPTER_EVENT_INVALID"
