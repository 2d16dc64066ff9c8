"""adapters.outbox on a real store and a fake clock: fan-out before attempts, order, backoff, dead
letters, replay, and a cursor that survives a restart."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from adapters.events import RECEIVED, SIGNED_FOR
from adapters.outbox import Outbox
from exchange_protocol.retry import RetryPolicy
from node.store.sqlite import Store
from pki.errors import ErrorKind, GwxError
from tests.adapters.support import U_A, U_B, U_SEND, Recorder, receive, send, signed_for
from tests.support import FakeClock

POLICY = RetryPolicy(min_delay=timedelta(seconds=10), max_delay=timedelta(seconds=40), multiplier=2.0,
                     jitter=0.0, max_age=timedelta(minutes=5))


class ReceiverDown(GwxError):
    code = "TEST_RECEIVER_DOWN"
    kind = ErrorKind.TRANSIENT


class ReceiverRefuses(GwxError):
    code = "TEST_RECEIVER_REFUSES"
    kind = ErrorKind.INVALID_INPUT


def _outbox(store, clock) -> Outbox:
    return Outbox(store, "node-a", clock, rand=lambda: 0.0)


def test_events_are_rows_before_the_first_attempt_and_only_from_registration_on(tmp_path):
    async def main():
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        try:
            await receive(store, "D-before")  # before the consumer existed: not its business
            outbox = _outbox(store, clock)
            seen_pending = []

            class Checking(Recorder):
                async def deliver(self, event):
                    rows = await store.adapter_outbox.rows(self.name)
                    seen_pending.append({(r.seq, r.state) for r in rows})
                    await super().deliver(event)

            consumer = Checking("test:a", wants=lambda e: e.unit == U_A)
            await outbox.add(consumer, POLICY)
            await receive(store, "D1")
            await receive(store, "D-other", unit=U_B)  # not wanted
            assert await outbox.fan_out("test:a") == 1
            [row] = await store.adapter_outbox.rows("test:a")
            assert (row.state, row.attempts) == ("pending", 0) and consumer.attempts == 0
            assert await outbox.step("test:a") is None
            assert [(e.type, e.doc_id, e.unit, e.data["title"]) for e in consumer.delivered] == [
                (RECEIVED, "D1", U_A, "关于开展冬季安全检查的通知")]
            assert seen_pending == [{(row.seq, "pending")}]  # the row was on disk when deliver ran
            assert [(r.state, r.attempts) for r in await store.adapter_outbox.rows("test:a")] == [("done", 1)]
            assert await store.adapter_outbox.counts() == {"test:a": {"done": 1}}
        finally:
            await store.close()
    asyncio.run(main())


def test_transient_failures_back_off_then_dead_letter_after_the_window_then_replay(tmp_path):
    async def main():
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        try:
            outbox = _outbox(store, clock)
            down = True
            tried: dict[str, list] = {}

            def fail(event):
                tried.setdefault(event.doc_id, []).append(clock())
                return ReceiverDown("connection refused") if down else None

            consumer = Recorder("test:b", fail=fail)
            await outbox.add(consumer, POLICY)
            await receive(store, "D1")
            await send(store, "S1")
            await signed_for(store, "S1", U_A)  # for U_SEND, after D1: must wait behind it
            due = await outbox.step("test:b")
            while due is not None:
                clock.now = due
                due = await outbox.step("test:b")
            # backoff 10, 20, 40, 40 … seconds, the last attempt at the window's edge (5 minutes);
            # the signed_for event is not tried before D1 is settled, then gets its own window
            for doc_id in ("D1", "S1"):
                times = tried[doc_id]
                gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
                assert gaps[:3] == [10.0, 20.0, 40.0] and set(gaps[3:]) <= {40.0, 30.0}, gaps
                assert times[-1] - times[0] == timedelta(minutes=5)
            assert tried["S1"][0] == tried["D1"][-1]
            rows = sorted(await store.adapter_outbox.rows("test:b"), key=lambda r: r.seq)
            assert [r.state for r in rows] == ["dead", "dead"]
            assert rows[0].last_error.code == "TEST_RECEIVER_DOWN"
            assert rows[0].finished_at - rows[0].first_failure_at <= timedelta(minutes=5)
            assert consumer.delivered == []
            # the receiver is back; the operator replays: both delivered, in their order, once
            down = False
            assert await outbox.replay("test:b") == 2
            assert await outbox.step("test:b") is None
            assert [(e.type, e.unit) for e in consumer.delivered] == [(RECEIVED, U_A), (SIGNED_FOR, U_SEND)]
            assert consumer.delivered[1].data["recipient"] == U_A
            assert await outbox.replay("test:b") == 0
            actions = [e.action for e in await store.audit.events(limit=1000)]
            assert actions.count("adapter.dead") == 2 and actions.count("adapter.replay") == 1
        finally:
            await store.close()
    asyncio.run(main())


def test_a_final_answer_is_dead_at_once_and_does_not_block_the_next(tmp_path):
    async def main():
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        try:
            outbox = _outbox(store, clock)
            consumer = Recorder("test:c", fail=lambda e: ReceiverRefuses("bad payload") if e.doc_id == "D1" else None)
            await outbox.add(consumer, POLICY)
            await receive(store, "D1")
            await receive(store, "D2")
            assert await outbox.step("test:c") is None
            assert consumer.attempts == 2 and [e.doc_id for e in consumer.delivered] == ["D2"]
            assert await store.adapter_outbox.counts() == {"test:c": {"dead": 1, "done": 1}}
        finally:
            await store.close()
    asyncio.run(main())


def test_an_untyped_exception_is_retried_as_a_defect(tmp_path):
    async def main():
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        try:
            outbox = _outbox(store, clock)
            calls = []

            class Buggy(Recorder):
                async def deliver(self, event):
                    calls.append(event.seq)
                    if len(calls) == 1:
                        raise KeyError("oops")
                    await super().deliver(event)

            consumer = Buggy("test:d")
            await outbox.add(consumer, POLICY)
            await receive(store, "D1")
            due = await outbox.step("test:d")
            [row] = await store.adapter_outbox.rows("test:d")
            assert row.last_error.code == "ADAPTER_CONSUMER_DEFECT" and due == clock() + timedelta(seconds=10)
            clock.now = due
            assert await outbox.step("test:d") is None and len(consumer.delivered) == 1
        finally:
            await store.close()
    asyncio.run(main())


def test_the_cursor_and_pending_rows_survive_a_restart(tmp_path):
    async def main():
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        outbox = _outbox(store, clock)
        first = Recorder("test:e")
        await outbox.add(first, POLICY)
        await receive(store, "D1")
        assert await outbox.step("test:e") is None
        await receive(store, "D2")
        assert await outbox.fan_out("test:e") == 1  # queued, never attempted
        await store.close()

        store = await Store.open(tmp_path, clock=clock)  # the node was down while D3 arrived
        await receive(store, "D3")
        await store.close()

        store = await Store.open(tmp_path, clock=clock)
        try:
            outbox = _outbox(store, clock)
            again = Recorder("test:e")
            await outbox.add(again, POLICY)
            await receive(store, "D4")
            assert await outbox.step("test:e") is None
            assert [e.doc_id for e in first.delivered] == ["D1"]
            assert [e.doc_id for e in again.delivered] == ["D2", "D3", "D4"]
            ids = [e.event_id for e in again.delivered]
            assert len(set(ids)) == 3 and all(i.startswith("node-a-") for i in ids)
        finally:
            await store.close()
    asyncio.run(main())


def test_loops_run_with_the_outbox_and_stop_cleanly(tmp_path):
    async def main():
        store = await Store.open(tmp_path)
        try:
            outbox = Outbox(store, "node-a", store.clock, poll=0.05)
            consumer = Recorder("test:f")
            await outbox.add(consumer)
            await outbox.start()
            await receive(store, "D1")
            for _ in range(100):
                if consumer.delivered:
                    break
                await asyncio.sleep(0.05)
            assert [e.doc_id for e in consumer.delivered] == ["D1"]
            late = Recorder("test:g")
            await outbox.add(late)  # added while running: its loop starts at once
            await receive(store, "D2")
            for _ in range(100):
                if late.delivered:
                    break
                await asyncio.sleep(0.05)
            assert [e.doc_id for e in late.delivered] == ["D2"]
            await outbox.stop()
            assert all(not t.get_name().startswith("gwx-adapter") for t in asyncio.all_tasks())
        finally:
            await store.close()
    asyncio.run(main())


def test_housekeeping_purges_delivered_rows_after_a_week_and_keeps_dead_ones(tmp_path):
    from node.ops.housekeeping import tidy

    async def main():
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        try:
            outbox = _outbox(store, clock)
            await outbox.add(Recorder("test:h", fail=lambda e: ReceiverRefuses("no") if e.doc_id == "D2" else None))
            await receive(store, "D1")
            await receive(store, "D2")
            await outbox.step("test:h")
            await tidy(store, clock.advance(days=6))
            assert await store.adapter_outbox.counts() == {"test:h": {"done": 1, "dead": 1}}
            await tidy(store, clock.advance(days=2))
            assert await store.adapter_outbox.counts() == {"test:h": {"dead": 1}}
        finally:
            await store.close()
    asyncio.run(main())


def test_a_wants_that_raises_neither_blocks_the_others_nor_leaks_the_event(tmp_path):
    async def main():
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        try:
            outbox = _outbox(store, clock)

            def picky(event):
                if event.doc_id == "D-odd":
                    raise KeyError("kind")  # a bug in the adapter's filter, on one event
                return True

            consumer = Recorder("test:w", wants=picky)
            await outbox.add(consumer, POLICY)
            for doc_id in ("D1", "D-odd", "D2"):
                await receive(store, doc_id)
            assert await outbox.step("test:w") is None
            assert [e.doc_id for e in consumer.delivered] == ["D1", "D2"]  # never given the undecided one
            [dead] = await store.adapter_outbox.rows("test:w", state="dead")
            assert dead.last_error.code == "ADAPTER_CONSUMER_DEFECT" and "KeyError" in dead.last_error.message
        finally:
            await store.close()

    asyncio.run(main())


def test_a_later_event_of_a_document_whose_earlier_one_is_dead_waits_with_it(tmp_path):
    async def main():
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        try:
            outbox = _outbox(store, clock)
            refusing = {"on": True}
            consumer = Recorder("test:o", fail=lambda e: ReceiverRefuses("未知的文种")
                                if refusing["on"] and e.doc_id == "D1" and e.type == RECEIVED else None)
            await outbox.add(consumer, POLICY)
            await receive(store, "D1")
            await receive(store, "D2")
            await store.messages.update_inbox("D1", U_A, "pending", {"status": "recalled"}, actor="node",
                                              action="inbox.recalled")
            assert await outbox.step("test:o") is None
            # The OA never hears of the 撤回 of a document it was never given; D2 goes on.
            assert [(e.doc_id, e.type) for e in consumer.delivered] == [("D2", RECEIVED)]
            dead = {r.seq: r.last_error.code for r in await store.adapter_outbox.rows("test:o", state="dead")}
            assert sorted(dead.values()) == ["ADAPTER_EARLIER_EVENT_DEAD", "TEST_RECEIVER_REFUSES"]
            refusing["on"] = False  # the OA's mapping fixed; the operator replays: both, in their order
            assert await outbox.replay("test:o") == 2
            assert await outbox.step("test:o") is None
            assert [(e.doc_id, e.type) for e in consumer.delivered[1:]] == [("D1", RECEIVED), ("D1", "document.recalled")]
        finally:
            await store.close()

    asyncio.run(main())


def test_consumers_that_want_nothing_write_nothing_and_event_ids_name_the_database_s_life(tmp_path):
    async def main():
        ids = []
        for life in ("first", "second"):  # the node made again under the same id: seqs start again
            clock = FakeClock()
            store = await Store.open(tmp_path / life, clock=clock)
            try:
                outbox = _outbox(store, clock)
                idle, taker = Recorder("test:idle", wants=lambda e: False), Recorder("test:taker")
                await outbox.add(idle, POLICY)
                await outbox.add(taker, POLICY)
                saved = await store.adapter_outbox.cursor("test:idle")
                await receive(store, "D1")
                assert await outbox.step("test:taker") is None
                assert await store.adapter_outbox.cursor("test:idle") == saved  # no write for it
                assert await store.adapter_outbox.cursor("test:taker") > saved
                ids.append(taker.delivered[0].event_id)
            finally:
                await store.close()
        assert ids[0] != ids[1] and ids[0].rsplit("-", 1)[1] == ids[1].rsplit("-", 1)[1]

    asyncio.run(main())


def test_a_consumer_forgotten_in_the_store_is_not_brought_back_by_the_fan_out(tmp_path):
    """`gwx webhook remove` forgets a consumer in the store while the running node still has it for up
    to a second: the fan-out must neither make its cursor again nor stop serving the others."""
    async def main():
        clock = FakeClock()
        store = await Store.open(tmp_path, clock=clock)
        try:
            outbox = _outbox(store, clock)
            gone, staying = Recorder("test:gone"), Recorder("test:staying")
            await outbox.add(gone, POLICY)
            await outbox.add(staying, POLICY)
            await store.adapter_outbox.forget("test:gone")
            await receive(store, "D1")
            assert await outbox.step("test:staying") is None
            assert [e.doc_id for e in staying.delivered] == ["D1"]
            assert await store.adapter_outbox.cursor("test:gone") is None
            assert await store.adapter_outbox.counts() == {"test:staying": {"done": 1}}
        finally:
            await store.close()
    asyncio.run(main())
