"""What a unit's OA consumer takes from the journal: the unit's received documents, and the status
changes of what it sent only when node.toml names a status operation; and its retry policy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from adapters.events import (
    DELIVERY_FAILED,
    RECALLED,
    RECEIVED,
    REGISTERED,
    RETURNED,
    SIGNED_FOR,
    AdapterEvent,
)
from adapters.oa_push.consumer import OaPushConsumer, oa_push_consumers
from tests.adapters.oa_push.test_settings import UNIT, example_node

OTHER = "11371300MB00000011"


def event(type_: str, unit: str = UNIT) -> AdapterEvent:
    return AdapterEvent(seq=7, type=type_, unit=unit, doc_id="gw.1", at=datetime(2026, 11, 30, tzinfo=UTC),
                        data={"recipient": OTHER}, event_id="city-7")


def test_the_consumer_wants_its_units_documents_and_status_changes(tmp_path):
    from node.config import load_config

    config = load_config(example_node(tmp_path))
    (consumer, policy, attempt_timeout), = oa_push_consumers(config, service=None)
    assert consumer.name == f"oa:{UNIT}"
    assert [t for t in (RECEIVED, SIGNED_FOR, RETURNED, DELIVERY_FAILED, REGISTERED, RECALLED)
            if consumer.wants(event(t))] == [RECEIVED, SIGNED_FOR, RETURNED, DELIVERY_FAILED]
    assert not consumer.wants(event(RECEIVED, OTHER))  # another unit's OA
    # The node's [retry] backoff, the entry's window; the outbox's guard outlasts one call.
    assert policy.min_delay == timedelta(seconds=config.retry.min_seconds)
    assert policy.max_age == timedelta(seconds=172800) and attempt_timeout > 30.0

    without_status = OaPushConsumer(replace(consumer.settings, status_operation=None), service=None)
    assert [t for t in (RECEIVED, SIGNED_FOR, RETURNED, DELIVERY_FAILED) if without_status.wants(event(t))] == [RECEIVED]
