"""Housekeeping while the node runs: finished queue rows purged, blobs no row needs collected.

Every :data:`INTERVAL` seconds: queue rows that reached a final state (sent, bounced) and adapter
outbox rows delivered (``done``; dead ones wait for the operator) more than
:data:`KEEP_FINISHED` ago are deleted — the audit log keeps their history, the document rows their
outcome — and then every blob no row refers to any more (``blob_refs``) and older than an hour is
removed. Without it the store only shrank at start-up (recovery collects garbage once), and a relay
kept every frame it ever forwarded, once per next hop, for as long as the node ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

from aiohttp import web

from node.store import NodeStore

log = logging.getLogger("gwx.housekeeping")

INTERVAL = 3600.0
KEEP_FINISHED = dt.timedelta(days=7)


async def tidy(store: NodeStore, now: dt.datetime) -> tuple[int, int]:
    """One round: (queue rows purged, blobs removed)."""
    purged = await store.queue.purge_finished(now - KEEP_FINISHED)
    delivered = await store.adapter_outbox.purge_finished(now - KEEP_FINISHED)  # dead rows wait for replay
    removed = await store.collect_garbage()
    if purged or removed or delivered:
        log.info("housekeeping: %d finished queue rows and %d delivered adapter rows purged, %d blobs removed",
                 purged, delivered, len(removed))
    return purged, len(removed)


def housekeeping(store: NodeStore, clock: Callable[[], dt.datetime], interval: float = INTERVAL):
    """An aiohttp ``cleanup_ctx``: :func:`tidy` every ``interval`` seconds while the node runs."""
    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await tidy(store, clock())
            except Exception:  # never let housekeeping stop the node; try again next round
                log.exception("housekeeping failed")

    async def ctx(app: web.Application):
        task = asyncio.get_running_loop().create_task(loop(), name="gwx-housekeeping")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx
