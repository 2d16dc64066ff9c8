"""The sender at a restart past an envelope's retry window (:meth:`BatchSender.bounce_expired`).

The county's queue holds envelopes to a hop it cannot reach (no such peer), sealed by the county
itself, their windows over. One whose window ended while the node was stopped gets one attempt
at the restart if its header is still alive — it fails here, and it is given up with that
attempt's error in the reason; one whose header has expired too is given up without an attempt;
one whose window ended while the node ran is given up as the peer not taking it.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_bundle
from node.federation.batch_sender import BatchSender
from node.federation.transport import PeerUnreachable
from node.store import OutboundItem
from pki.certificates import load_certificates
from tests.node.federation import processing_support
from tests.node.federation.processing_support import SENDER, A, close_processor, open_processor

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)
HOP = "town-a"  # in no peer list: every attempt fails PEER_UNREACHABLE


async def _queue(ctx, store, city_dir, created: dt.datetime, header_ttl: dt.timedelta, window_end: dt.datetime) -> str:
    enc = load_certificates((city_dir / "credentials" / "enc.crt").read_bytes())[0]
    header = HeaderDraft.new(MessageType.DOCUMENT, ctx.node_id, "city", A, (SENDER,), created, header_ttl)
    ref = await store.blobs.put(seal_bundle([header], b"a payload", ctx.sender, [Recipient(enc)]).data)
    await store.queue.enqueue(OutboundItem(header.message_id, HOP, ref.digest, ref.size, "document",
                                           expires_at=window_end))
    return header.message_id


@pytest.mark.parametrize("case", ["header alive", "header expired", "ended while running"])
def test_a_window_past_at_the_restart(node_dir, tmp_path, case):
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            ttl = dt.timedelta(minutes=30) if case == "header expired" else dt.timedelta(days=1, hours=1)
            message_id = await _queue(ctx, store, node_dir / "city", now - dt.timedelta(hours=1), ttl, now - dt.timedelta(minutes=5))
            if case == "ended while running":
                outbound.started_at = now - dt.timedelta(hours=1)
            sender = BatchSender(outbound, HOP)
            if case == "header alive":
                with pytest.raises(PeerUnreachable):
                    await sender.bounce_expired(now)
            else:
                await sender.bounce_expired(now)
            entry = await store.queue.get(message_id)
            assert entry is not None and entry.state == "bounced"
            reason = entry.last_error.message
            if case == "ended while running":
                assert "the peer did not take it for the whole window" in reason, reason
            else:
                assert "while this node was stopped" in reason, reason
                tried = "the one attempt made then failed: PEER_UNREACHABLE" in reason
                assert tried == (case == "header alive"), reason
                assert ("not tried since" in reason) == (case == "header expired"), reason
            await sender.bounce_expired(ctx.clock())  # nothing left: no second attempt
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())


def test_an_attempt_that_fails_once_the_window_has_closed_gives_it_up_as_expired(node_dir, tmp_path):
    """The window can close at a failed attempt (the retry function has no time left) as well as in
    the sweep of expired rows (:meth:`BatchSender.bounce_expired`): either way the clerk reads the
    same reason, QUEUE_EXPIRED naming the last error — not the last attempt's bare error (a loaded
    run of test_sender_stopped once got a bare PEER_UNREACHABLE from this path)."""
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            window_end = now + dt.timedelta(minutes=10)
            message_id = await _queue(ctx, store, node_dir / "city", now, dt.timedelta(days=1), window_end)
            sender = BatchSender(outbound, HOP)
            unreachable = PeerUnreachable("town-a: connection refused", code="PEER_UNREACHABLE")
            await sender.defer_or_bounce(await store.queue.get(message_id), unreachable, now)
            assert (await store.queue.get(message_id)).state == "deferred"  # time left: tried again later
            await sender.defer_or_bounce(await store.queue.get(message_id), unreachable,
                                         window_end + dt.timedelta(seconds=1))
            entry = await store.queue.get(message_id)
            assert entry.state == "bounced" and entry.last_error.code == "QUEUE_EXPIRED", entry.last_error
            reason = entry.last_error.message
            assert "retry window closed before delivery: the peer did not take it for the whole window" in reason
            assert "2 attempt(s), the last: PEER_UNREACHABLE town-a: connection refused" in reason, reason
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())
