"""Shared helpers for the store tests: a store opened in a tmp dir on a hand-moved clock (tests.support).

Tests are plain functions that call ``asyncio.run`` (no pytest-asyncio); each test opens and closes
its own store so no aiosqlite thread outlives it.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import asynccontextmanager

from node.store import InboundEnvelope, OutboundItem
from node.store.sqlite import Store
from tests.support import FakeClock


@asynccontextmanager
async def open_store(path, clock=None, **kwargs):
    store = await Store.open(path, clock=clock or FakeClock(), **kwargs)
    try:
        yield store
    finally:
        await store.close()


async def put_envelope(store: Store, message_id: str, origin: str = "node-a", size: int = 600,
                       receipt: bytes | None = None) -> InboundEnvelope:
    data = message_id.encode() + os.urandom(size)
    ref = await store.blobs.put(data)
    assert ref.digest == hashlib.sha256(data).hexdigest()
    return InboundEnvelope(message_id, ref.digest, ref.digest, origin,
                           receipt or b"receipt:" + message_id.encode() + os.urandom(8), "document", ref.size)


async def queued_item(store: Store, message_id: str, destination: str = "node-b", **kwargs) -> OutboundItem:
    ref = await store.blobs.put(message_id.encode() + os.urandom(300))
    return OutboundItem(message_id, destination, ref.digest, ref.size, "document", **kwargs)
