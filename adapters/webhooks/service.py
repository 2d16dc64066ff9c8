"""Webhooks in the running node: one outbox consumer per subscription, kept in step with the store.

:class:`Webhooks` reads the subscriptions at start and again whenever the store's mark of a change
(``store.adapter_outbox.webhooks_mark()``: a stat, not a query) has moved, looked at every
:data:`SYNC_SECONDS` — and every :data:`FULL_SYNC_SECONDS` whatever the mark says, should a change
have committed without its mark (a crash in between). So ``gwx webhook add`` and ``remove`` (which
write the store directly, running node or not) take effect within a second, and a node with no
change pays no query every second (163 nodes on one machine did): a new subscription gets its consumer (its cursor was started when it was added,
so nothing that happened in between is lost), a removed one loses it. One HTTP client session
serves every webhook. The retry policy and the per-attempt timeout are node.toml's ``[webhooks]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import aiohttp

from adapters.outbox import Outbox
from adapters.webhooks.delivery import WebhookConsumer, consumer_name
from adapters.webhooks.subscriptions import read_secret
from exchange_protocol.retry import RetryPolicy
from node.config import NodeConfig
from node.store import NodeStore, WebhookSubscription

log = logging.getLogger("gwx.adapters.webhooks")
SYNC_SECONDS = 1.0
FULL_SYNC_SECONDS = 60.0


def retry_policy(config: NodeConfig) -> RetryPolicy:
    s = config.webhooks
    return RetryPolicy(min_delay=timedelta(seconds=s.min_seconds), max_delay=timedelta(seconds=s.max_seconds),
                       multiplier=2.0, jitter=0.5, max_age=timedelta(seconds=s.window_seconds))


class Webhooks:
    def __init__(self, config: NodeConfig, store: NodeStore, outbox: Outbox, clock: Callable[[], datetime]) -> None:
        self._config = config
        self._store = store
        self._outbox = outbox
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self._known: dict[str, WebhookSubscription] = {}
        self._mark: object = None  # the store's mark when the subscriptions were last read

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        await self.sync()
        self._task = asyncio.get_running_loop().create_task(self._keep_in_step(), name="gwx-webhooks-sync")

    async def stop(self) -> None:
        """After the outbox stopped (its loops use the session)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def sync(self) -> None:
        self._mark = self._store.adapter_outbox.webhooks_mark()  # before reading: a change meanwhile is seen next time
        current = {s.id: s for s in await self._store.adapter_outbox.webhooks()}
        for webhook_id in set(self._known) - set(current):
            await self._outbox.remove(consumer_name(webhook_id))
            del self._known[webhook_id]
            log.info("webhook %s removed", webhook_id, extra={"webhook": webhook_id})
        for webhook_id, sub in current.items():
            if self._known.get(webhook_id) == sub:
                continue
            if webhook_id in self._known:  # its URL changed (gwx webhook change): same name, cursor and rows
                await self._outbox.remove(consumer_name(webhook_id))
            await self._outbox.add(self._consumer(sub), retry_policy(self._config),
                                   attempt_timeout=self._config.webhooks.timeout_seconds + 5)
            self._known[webhook_id] = sub
            log.info("webhook %s: %s events of %s to %s", webhook_id, ",".join(sub.types), sub.unit, sub.url,
                     extra={"webhook": webhook_id})

    def _consumer(self, sub: WebhookSubscription) -> WebhookConsumer:
        assert self._session is not None
        # The secret is read at each attempt: a file restored after WEBHOOK_SECRET_MISSING serves the
        # replay without a restart.
        return WebhookConsumer(sub, lambda: read_secret(self._config, sub.id), self._session, self._clock,
                               self._config.webhooks.timeout_seconds)

    async def _keep_in_step(self) -> None:
        loop = asyncio.get_running_loop()
        read_at = loop.time()
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            try:
                if self._store.adapter_outbox.webhooks_mark() != self._mark or loop.time() - read_at >= FULL_SYNC_SECONDS:
                    read_at = loop.time()
                    await self.sync()
            except Exception:
                log.exception("cannot read the webhook subscriptions")
