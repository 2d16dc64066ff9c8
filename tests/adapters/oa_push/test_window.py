"""The OA push on the real outbox and store (fake clock) against the real test OA: an OA down past
the window is dead-lettered with OA_UNAVAILABLE and the last error, a Client fault is dead at once,
and a replay once the OA is back delivers each under the same 公文标识 and event id."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import timedelta

from adapters.oa_push.consumer import OaPushConsumer
from adapters.oa_push.mapping import load_mapping
from adapters.oa_push.settings import OaPushSettings
from adapters.outbox import Outbox
from exchange_protocol.retry import RetryPolicy
from node.store.sqlite import Store
from tests.adapters.oa_push.legacy_oa import LegacyOa
from tests.adapters.oa_push.test_mapping import EXAMPLE
from tests.adapters.support import U_A, U_B, U_SEND, send, signed_for
from tests.support import FakeClock

logging.getLogger("spyne").setLevel(logging.CRITICAL)
POLICY = RetryPolicy(min_delay=timedelta(seconds=10), max_delay=timedelta(seconds=40), multiplier=2.0,
                     jitter=0.0, max_age=timedelta(minutes=5))


def test_down_past_the_window_then_replayed_and_a_fault_dead_at_once(tmp_path):
    async def main(oa: LegacyOa):
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        settings = OaPushSettings(unit=U_SEND, wsdl=oa.wsdl_url, received_operation="ReceiveGongwen",
                                  status_operation="UpdateZhuangtai", mapping_path=EXAMPLE,
                                  mapping=load_mapping(EXAMPLE), timeout_seconds=5.0)
        consumer = OaPushConsumer(settings, service=None)  # status changes need no document read
        outbox = Outbox(store, "node-a", clock, rand=lambda: 0.0)
        name = consumer.name
        try:
            await outbox.add(consumer, POLICY)
            oa.down()
            await send(store, "D1")
            await signed_for(store, "D1", U_A, by="张三")
            for _ in range(10):  # attempts 10 s, 20 s, 40 s, 40 s … apart until 5 minutes have passed
                due = await outbox.step(name)
                if due is None:
                    break
                clock.now = due
            [row] = await store.adapter_outbox.rows(name)
            assert row.state == "dead" and row.attempts > 3
            assert row.last_error.code == "OA_UNAVAILABLE" and "could not be" in row.last_error.message
            assert oa.state.calls == []

            oa.up()
            oa.state.fault_next.append(("Client", "接收单位代码不存在"))
            await send(store, "D2")
            await signed_for(store, "D2", U_B, by="李四")
            assert await outbox.step(name) is None
            rows = {r.seq: r for r in await store.adapter_outbox.rows(name)}
            faulted = rows[max(rows)]
            assert faulted.state == "dead" and faulted.attempts == 1  # a Client fault: no retry
            assert faulted.last_error.code == "OA_FAULT" and "接收单位代码不存在" in faulted.last_error.message

            assert await outbox.replay(name) == 2
            assert await outbox.step(name) is None
            assert {r.state for r in await store.adapter_outbox.rows(name)} == {"done"}
            event_ids = sorted(json.loads(r.event)["event_id"] for r in rows.values())
            assert sorted(oa.state.statuses) == event_ids  # the OA keeps them by sjbs: our event ids
            assert sorted(s["czr"] for s in oa.state.statuses.values()) == ["张三", "李四"]
            assert [op for op, *_ in oa.state.calls] == ["UpdateZhuangtai"] * 3  # the faulted call, then two
        finally:
            await consumer.close()
            await store.close()

    with LegacyOa() as oa:
        asyncio.run(main(oa))


def test_status_changes_are_not_asked_of_an_oa_without_a_status_operation(tmp_path):
    async def main(oa: LegacyOa):
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        mapping = load_mapping(EXAMPLE)
        settings = OaPushSettings(unit=U_SEND, wsdl=oa.wsdl_url, received_operation="ReceiveGongwen",
                                  mapping_path=EXAMPLE, mapping=replace(mapping, status_change=None, status=None))
        consumer = OaPushConsumer(settings, service=None)
        outbox = Outbox(store, "node-a", clock, rand=lambda: 0.0)
        try:
            await outbox.add(consumer, POLICY)
            await send(store, "D2")
            await signed_for(store, "D2", U_A)
            assert await outbox.fan_out(consumer.name) == 0
        finally:
            await store.close()

    with LegacyOa() as oa:
        asyncio.run(main(oa))
