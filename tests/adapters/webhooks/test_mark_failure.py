"""The webhooks change mark is written after the commit and only speeds up what a running node sees: when
it cannot be written (disk full, EACCES, a directory in the way), ``gwx webhook add/change/remove`` still
succeed, keep or drop the secret as the stored subscription needs, and say so in a warning; the node's
once-a-minute re-read catches up."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from adapters.webhooks import subscriptions
from node.config import load_config
from node.store.sqlite import Store
from tests.adapters.support import U_A
from tests.node.federation.federation_support import provision_county_and_city


def test_add_change_remove_succeed_when_the_mark_cannot_be_written(tmp_path, caplog):
    base = provision_county_and_city(tmp_path / "net", "标记CA", {U_A: "甲单位"}, {})
    config = load_config(base / "county")

    async def main():
        store = await Store.open(tmp_path / "data")
        (tmp_path / "data" / "webhooks.changed").mkdir()  # the mark cannot be replaced (any OSError will do)
        try:
            with caplog.at_level(logging.WARNING):
                sub, secret = await subscriptions.add(store, config, U_A, "https://127.0.0.1:9/hook", None,
                                                      dt.datetime.now(dt.UTC))
            assert [s.id for s in await store.adapter_outbox.webhooks()] == [sub.id]
            assert subscriptions.read_secret(config, sub.id) == secret  # deliveries can still be signed
            assert "webhooks.changed" in caplog.text

            changed, new = await subscriptions.change(store, config, sub.id, url="https://127.0.0.1:9/other",
                                                      new_secret_too=True)
            assert changed.url == "https://127.0.0.1:9/other"
            assert subscriptions.read_secret(config, sub.id) == new

            await subscriptions.remove(store, config, sub.id)
            assert await store.adapter_outbox.webhooks() == []
            assert not subscriptions.secret_path(config, sub.id).exists()
        finally:
            await store.close()
    asyncio.run(main())
