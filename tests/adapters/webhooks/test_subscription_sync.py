"""A running node follows its webhook subscriptions without a query every second.

``gwx webhook add`` writes the store from another process; the node used to read every subscription
each second to notice (163 nodes on one machine: 163 queries a second, each a round trip through a
shared event loop). Now the store rewrites a mark beside the database with every change, and the node
reads the subscriptions only when that mark has moved (or once a minute, as a backstop).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from adapters.outbox import Outbox
from adapters.webhooks.delivery import consumer_name
from adapters.webhooks.service import SYNC_SECONDS, Webhooks
from node.config import load_config
from node.store.sqlite import Store
from node.store.values import WebhookSubscription
from tests.adapters.support import U_A
from tests.node.federation.federation_support import provision_county_and_city


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    base = provision_county_and_city(tmp_path_factory.mktemp("webhook-sync"), "订阅测试CA", {U_A: "甲单位"}, {})
    return load_config(base / "county")


async def until(condition, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return None


def test_subscriptions_are_read_again_only_when_they_changed(config, tmp_path):
    async def main():
        store = await Store.open(tmp_path / "data")
        cli = await Store.open(tmp_path / "data")  # what `gwx webhook add` opens: another handle, same files
        outbox = Outbox(store, "county", store.clock, poll=60.0)
        webhooks = Webhooks(config, store, outbox, store.clock)
        reads = 0
        real = store.adapter_outbox.webhooks

        async def counted():
            nonlocal reads
            reads += 1
            return await real()
        store.adapter_outbox.webhooks = counted
        await outbox.start()
        await webhooks.start()
        try:
            at_start = reads
            await asyncio.sleep(3.2 * SYNC_SECONDS)
            assert reads == at_start, "nothing changed: no query"

            sub = WebhookSubscription("w1", U_A, "https://127.0.0.1:9/hook", ("document.received",),
                                      dt.datetime.now(dt.UTC))
            await cli.adapter_outbox.add_webhook(sub)
            seen = await until(lambda: consumer_name("w1") in outbox.names(), 3 * SYNC_SECONDS)
            assert seen is not None and seen < 2 * SYNC_SECONDS + 0.5, "a new subscription is followed within a second"

            await cli.adapter_outbox.remove_webhook("w1")
            gone = await until(lambda: consumer_name("w1") not in outbox.names(), 3 * SYNC_SECONDS)
            assert gone is not None
        finally:
            await webhooks.stop()
            await outbox.stop()
            await cli.close()
            await store.close()
    asyncio.run(main())


def test_a_change_whose_mark_was_not_written_is_seen_at_the_full_re_read(config, tmp_path, monkeypatch):
    """The mark is best effort: when it cannot be written (here a directory is in its way, so it never
    moves), the running node still follows the change at its periodic full re-read."""
    from adapters.webhooks import service
    monkeypatch.setattr(service, "FULL_SYNC_SECONDS", 1.5)

    async def main():
        store = await Store.open(tmp_path / "data")
        cli = await Store.open(tmp_path / "data")
        (tmp_path / "data" / "webhooks.changed").mkdir()
        outbox = Outbox(store, "county", store.clock, poll=60.0)
        webhooks = Webhooks(config, store, outbox, store.clock)
        await outbox.start()
        await webhooks.start()
        try:
            sub = WebhookSubscription("w2", U_A, "https://127.0.0.1:9/hook", ("document.received",),
                                      dt.datetime.now(dt.UTC))
            await cli.adapter_outbox.add_webhook(sub)  # commits; its mark cannot be written (a warning)
            seen = await until(lambda: consumer_name("w2") in outbox.names(), 4.0)
            assert seen is not None, "the full re-read picks up a change whose mark never moved"
        finally:
            await webhooks.stop()
            await outbox.stop()
            await cli.close()
            await store.close()
    asyncio.run(main())
