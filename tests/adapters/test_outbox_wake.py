"""The adapters hear of a commit at once: the store says when audit events were committed.

``Database.watch_audit`` is called after every commit that appended audit events (not after one that
appended none, nor after a rollback); the outbox's fan-out wakes on it, so an event reaches a consumer
without waiting for the backstop poll — which still finds what another process committed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from adapters.outbox import Outbox
from node.store.sqlite import Store
from tests.adapters.support import Recorder, receive

LONG_BACKSTOP = 60.0  # a poll that would never fire within the tests


async def delivered_within(consumer: Recorder, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if consumer.delivered:
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    return None


def test_the_store_tells_its_watchers_of_commits_that_appended_audit_events(tmp_path):
    async def main():
        store = await Store.open(tmp_path)
        try:
            heard: list[int] = []
            stop = store.audit.watch(heard.append)
            await receive(store, "D1")
            head, _ = await store.audit.head()
            assert heard == [head]
            async with store.transaction() as tx:  # a commit without audit events
                await tx.execute("SELECT 1")
            with pytest.raises(RuntimeError):
                async with store.transaction() as tx:  # appended, then rolled back
                    await store.audit.append(tx, "test", "test.rolled_back", {"doc_id": "D0"})
                    raise RuntimeError("changed my mind")
            assert heard == [head]
            stop()
            await receive(store, "D2")
            assert heard == [head]
        finally:
            await store.close()
    asyncio.run(main())


def test_a_committed_event_is_delivered_without_waiting_for_the_poll(tmp_path):
    async def main():
        store = await Store.open(tmp_path)
        try:
            outbox = Outbox(store, "node-a", store.clock, poll=LONG_BACKSTOP)
            consumer = Recorder("test:wake")
            await outbox.add(consumer)
            await outbox.start()
            await asyncio.sleep(0.1)  # the fan-out has looked once and now waits
            await receive(store, "D1")
            took = await delivered_within(consumer, 2.0)
            assert took is not None and took < 0.5, took
            watchers = store.audit._db._audit_watchers  # the store's list of commit callbacks
            assert len(watchers) == 1
            await outbox.stop()
            assert watchers == []  # stopped: no watcher left behind (a callback per start would pile up)
            await receive(store, "D2")
            await asyncio.sleep(0.1)
            assert [e.doc_id for e in consumer.delivered] == ["D1"]
        finally:
            await store.close()
    asyncio.run(main())


def test_a_consumer_added_while_running_gets_what_passed_since_its_cursor_at_once(tmp_path):
    """A webhook added by ``gwx webhook add`` has its cursor from the moment it was added; the running
    node registers its consumer a moment later: what was committed in between is queued at once."""
    async def main():
        store = await Store.open(tmp_path)
        try:
            outbox = Outbox(store, "node-a", store.clock, poll=LONG_BACKSTOP)
            await outbox.start()
            await asyncio.sleep(0.1)
            await store.adapter_outbox.start_cursor("test:late")  # what `gwx webhook add` does
            await receive(store, "D1")  # committed before the node has the consumer
            late = Recorder("test:late")
            await outbox.add(late)
            took = await delivered_within(late, 2.0)
            assert took is not None and took < 0.5, took
            await outbox.stop()
        finally:
            await store.close()
    asyncio.run(main())


def test_what_another_process_commits_is_found_by_the_backstop_poll(tmp_path):
    async def main():
        store = await Store.open(tmp_path)
        other = await Store.open(tmp_path)  # another writer of the same file (a gwx command): no notification
        try:
            outbox = Outbox(store, "node-a", store.clock, poll=0.3)
            consumer = Recorder("test:backstop")
            await outbox.add(consumer)
            await outbox.start()
            await receive(other, "D1")
            assert await delivered_within(consumer, 5.0) is not None
            assert [e.doc_id for e in consumer.delivered] == ["D1"]
            await outbox.stop()
        finally:
            await other.close()
            await store.close()
    asyncio.run(main())
