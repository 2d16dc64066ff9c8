"""Housekeeping: what a relay forwarded does not stay on its disk for ever."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import time

from node.ops.housekeeping import KEEP_FINISHED, tidy
from node.store import InboundEnvelope, OutboundItem
from tests.node.store.conftest import open_store
from tests.support import FakeClock


def aged(store, digest: str) -> None:
    """The blob's file as old as the fake clock says (collection judges a blob's age by its file)."""
    old = time.time() - KEEP_FINISHED.total_seconds() - 7200
    os.utime(store.blobs.path_for(digest), (old, old))


def test_a_relayed_frame_is_removed_once_forwarded_and_its_row_purged_but_its_identity_stays(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            frame = os.urandom(2000)
            ref = await store.blobs.put(frame)
            env = InboundEnvelope("m-relayed", hashlib.sha256(frame).hexdigest(), ref.digest, "city", b"receipt",
                                  "document", ref.size, None, "identity-1", relayed_to="town-a")
            [accepted] = await store.relay_inbound([(env, OutboundItem("m-relayed", "town-a", ref.digest, ref.size,
                                                                       "document"))])
            assert accepted.new
            assert await tidy(store, clock()) == (0, 0)  # queued: the frame is needed
            await store.queue.mark_sent(["m-relayed"], b"town-a's receipt")
            clock.advance(seconds=KEEP_FINISHED.total_seconds() + 3601)
            aged(store, ref.digest)
            assert await tidy(store, clock()) == (1, 1)
            assert not store.blobs.exists(ref.digest)
            # The row stays: a resend of the same envelope is still recognised (its identity).
            again = await store.relay_inbound([(env, OutboundItem("m-relayed", "town-a", ref.digest, ref.size,
                                                                  "document"))])
            assert not again[0].new and again[0].receipt == b"receipt"

    asyncio.run(main())


def test_our_own_received_envelopes_keep_their_blob(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            frame = os.urandom(2000)
            ref = await store.blobs.put(frame)
            env = InboundEnvelope("m-ours", hashlib.sha256(frame).hexdigest(), ref.digest, "city", b"receipt",
                                  "document", ref.size, None, "identity-2")
            await store.accept_inbound(dataclasses.replace(env))
            clock.advance(seconds=KEEP_FINISHED.total_seconds() + 3601)
            aged(store, ref.digest)
            await tidy(store, clock())
            assert store.blobs.exists(ref.digest)

    asyncio.run(main())
