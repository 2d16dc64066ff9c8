"""The outbox stops when asked, however its cancel lands, and an attempt cut short stays pending.

The CI's hung node (a 30 s SIGTERM wait in test_push_memory.py): the OA was down and the push to it
was retried every half second; SIGTERM's cancel reached the push while it was connecting, httpx
(anyio) answered the cancelled connect with ``ConnectError('All connection attempts failed')``, the
OA client turned that into OA_UNAVAILABLE, the outbox recorded a retry and its loop went on — and
``Outbox.stop`` awaited it for ever. Python 3.11's ``asyncio.wait_for`` loses a cancel the same way
when it meets a wake-up in the same turn of the loop. Both are reproduced here without timing luck.
"""

from __future__ import annotations

import asyncio
import contextlib

from adapters.outbox import STOP_LOOP_SECONDS, Outbox
from node.store.sqlite import Store
from pki.errors import ErrorKind, GwxError
from tests.adapters.support import Recorder, receive

LONG_BACKSTOP = 60.0


class Unreachable(GwxError):
    code = "TEST_UNREACHABLE"
    kind = ErrorKind.TRANSIENT


class CancelInDisguise(Recorder):
    """A consumer whose library answers a cancel with its own error, as httpx did for a connect."""

    def __init__(self) -> None:
        super().__init__("test:disguise")
        self.started = asyncio.Event()

    async def deliver(self, event) -> None:
        self.attempts += 1
        self.started.set()
        try:
            await asyncio.sleep(30)  # connecting to an OA that does not answer
        except asyncio.CancelledError:
            raise Unreachable("all connection attempts failed") from None


async def stop_took(outbox: Outbox, *, wake_first: bool = False, limit: float = 6.0) -> float:
    """Seconds ``outbox.stop()`` took (``limit`` when it had not returned by then); with
    ``wake_first`` the consumers are woken in the same turn of the loop as the stop begins."""
    async def stop() -> None:
        if wake_first:
            outbox.wake()  # a commit wakes the consumers just as the node stops
        await outbox.stop()

    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(stop())
    done, _ = await asyncio.wait({task}, timeout=limit)
    return loop.time() - started if done else limit


def test_a_stop_that_meets_a_wake_up_in_the_same_turn_still_stops_the_loops(tmp_path):
    async def main():
        store = await Store.open(tmp_path)
        try:
            outbox = Outbox(store, "node-a", store.clock, poll=LONG_BACKSTOP)
            await outbox.add(Recorder("test:idle"))
            await outbox.start()
            await asyncio.sleep(0.2)  # the consumer's loop waits for a wake-up (or its idle look)
            assert await stop_took(outbox, wake_first=True) < 1.0  # was: for ever (the wake-up swallowed the cancel)
        finally:
            await store.close()
    asyncio.run(main())


def test_an_attempt_whose_cancel_comes_back_as_an_error_is_abandoned_and_its_row_left_pending(tmp_path):
    async def main():
        store = await Store.open(tmp_path)
        try:
            outbox = Outbox(store, "node-a", store.clock, poll=LONG_BACKSTOP)
            consumer = CancelInDisguise()
            await outbox.add(consumer)
            await outbox.start()
            await receive(store, "D1")
            await asyncio.wait_for(consumer.started.wait(), 5.0)
            assert await stop_took(outbox) < 1.0  # was: for ever (a retry recorded, the loop went on)
            assert consumer.attempts == 1
            [row] = await store.adapter_outbox.rows(consumer.name)
            assert (row.state, row.attempts, row.last_error) == ("pending", 0, None)  # not a failed attempt

            outbox = Outbox(store, "node-a", store.clock, poll=LONG_BACKSTOP)  # the next start
            again = Recorder("test:disguise")
            await outbox.add(again)
            assert await outbox.step("test:disguise") is None
            assert [e.doc_id for e in again.delivered] == ["D1"]  # delivered once, after the restart
        finally:
            await store.close()
    asyncio.run(main())


class Deaf(Recorder):
    """A consumer stuck in a call that ignores every cancel for ``seconds`` (a library's bug)."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(name)
        self.seconds = seconds
        self.started = asyncio.Event()
        self.ended = asyncio.Event()

    async def deliver(self, event) -> None:
        self.attempts += 1
        self.started.set()
        loop = asyncio.get_running_loop()
        until = loop.time() + self.seconds
        try:
            while (left := until - loop.time()) > 0:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(left)
            raise asyncio.CancelledError  # at last it gives in
        finally:
            self.ended.set()


def test_loops_that_ignore_their_cancel_are_given_up_on_together_not_one_after_the_other(tmp_path):
    """Each stuck loop is waited for STOP_LOOP_SECONDS; two of them cost it once, not twice — one
    after the other, a few of these (and the queues', the fetchers') took a node's stop past its
    10 s deadline."""
    async def main():
        store = await Store.open(tmp_path)
        try:
            outbox = Outbox(store, "node-a", store.clock, poll=LONG_BACKSTOP)
            stuck = [Deaf("test:deaf-1", 5.0), Deaf("test:deaf-2", 5.0)]
            for consumer in stuck:
                await outbox.add(consumer)
            await outbox.start()
            await receive(store, "D1")
            await asyncio.wait_for(asyncio.gather(*(c.started.wait() for c in stuck)), 5.0)
            took = await stop_took(outbox, limit=10.0)
            assert took < STOP_LOOP_SECONDS + 1.0, f"the stop took {took:.1f} s"
            await asyncio.wait_for(asyncio.gather(*(c.ended.wait() for c in stuck)), 10.0)
        finally:
            await store.close()
    asyncio.run(main())
