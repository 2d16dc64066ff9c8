"""Subprocess of the kill -9 test: a real store and outbox delivering to an HTTP receiver.

Usage: python -m tests.adapters.outbox_child DATA_DIR RECEIVER_URL MODE
MODE ``first``: register the consumer, receive one document, deliver it; after the receiver's
answer print ``ANSWERED <event_id>`` and hold (the parent kills us there, before the outbox
commits the row as done). MODE ``again``: deliver whatever is pending, print ``DONE``, exit.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import aiohttp

from adapters.outbox import Outbox
from exchange_protocol.retry import RetryPolicy
from node.store.sqlite import Store
from tests.adapters.support import receive


class HttpConsumer:
    name = "test:http"

    def __init__(self, url: str, hold: bool) -> None:
        self.url = url
        self.hold = hold

    def wants(self, event) -> bool:
        return True

    async def deliver(self, event) -> None:
        async with aiohttp.ClientSession() as session, session.post(
                self.url, data=event.to_text().encode(), headers={"X-Event-Id": event.event_id}) as answer:
            answer.raise_for_status()
        if self.hold:
            print(f"ANSWERED {event.event_id}", flush=True)
            await asyncio.sleep(3600)  # killed here: answered, not yet committed


async def main(data_dir: str, url: str, mode: str) -> None:
    store = await Store.open(data_dir)
    outbox = Outbox(store, "node-kill", store.clock)
    await outbox.add(HttpConsumer(url, hold=mode == "first"),
                     RetryPolicy(min_delay=timedelta(seconds=1), max_delay=timedelta(seconds=1)))
    if mode == "first":
        await receive(store, "D-kill")
    while await outbox.step("test:http") is not None:
        await asyncio.sleep(0.1)
    print("DONE", flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
