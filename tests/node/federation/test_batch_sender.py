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
from aiohttp import web

from exchange_protocol.batch_answer import FrameAnswer, encode_batch_answer
from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_bundle
from exchange_protocol.ids import new_id
from exchange_protocol.transport_receipt import TransportReceipt, sign_receipt, verify_receipt
from node.federation.batch_sender import BatchSender
from node.federation.transport import PeerUnreachable
from node.store import OutboundItem
from pki.certificates import load_certificates
from tests.node.federation import processing_support
from tests.node.federation.federation_support import node_context
from tests.node.federation.processing_support import SENDER, A, close_processor, open_processor
from tests.node.federation.test_destination_credentials import city_answering, county_outbound

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


def test_the_receipts_of_one_request_are_recorded_in_one_transaction(node_dir, tmp_path):
    """Three envelopes to the city in one request, each answered with the city's own signed receipt
    (over mutual TLS on loopback): each row is ``sent`` with its receipt, and one commit recorded them
    all, not one each."""
    async def run():
        city = node_context(node_dir / "city")
        async with city_answering(node_dir) as (_, url, _calls, runner), \
                county_outbound(node_dir, tmp_path, url) as (ctx, store, outbound):
            now = ctx.clock()
            ids = [await _queue_for(ctx, store, node_dir / "city", now, "city") for _ in range(3)]
            window = await store.queue.load_active_window("city", 10)
            assert sorted(e.message_id for e in window) == sorted(ids)

            async def envelopes(request: web.Request) -> web.Response:  # the city's answer, in the window's order
                await request.read()
                answers = [FrameAnswer(e.message_id, receipt=sign_receipt(
                    TransportReceipt(e.message_id, e.blob_digest, city.clock(), "city"), city.signer,
                    city.intermediates)) for e in window]
                return web.Response(body=encode_batch_answer(answers), content_type="application/json")
            runner.app.router._frozen = False  # the city's peer app gains its envelopes route
            runner.app.router.add_post("/peer/v1/envelopes", envelopes)

            transactions = _counting_transactions(store)
            await BatchSender(outbound, "city").send(window)
            assert transactions == [1]
            for e in window:
                row = await store.queue.get(e.message_id)
                assert row.state == "sent" and verify_receipt(
                    row.receipt, trust=city.trust, now=city.clock(), message_id=e.message_id,
                    envelope_digest=e.blob_digest, receiver_node="city") is not None  # raises unless its own
    asyncio.run(run())


async def _queue_for(ctx, store, city_dir, created: dt.datetime, hop: str) -> str:
    enc = load_certificates((city_dir / "credentials" / "enc.crt").read_bytes())[0]
    header = HeaderDraft.new(MessageType.TRANSPORT_ACK, ctx.node_id, "city", A, (SENDER,), created,
                             dt.timedelta(days=1), in_reply_to=new_id(created))
    ref = await store.blobs.put(seal_bundle([header], header.message_id.encode(), ctx.sender, [Recipient(enc)]).data)
    await store.queue.enqueue(OutboundItem(header.message_id, hop, ref.digest, ref.size, "transport-ack",
                                           expires_at=created + dt.timedelta(days=1)))
    return header.message_id


def _counting_transactions(store) -> list[int]:
    """How many transactions ``store`` opens from now on (one list entry, counted up)."""
    opened = [0]
    transaction = store.transaction

    def counted(*args, **kwargs):
        opened[0] += 1
        return transaction(*args, **kwargs)
    store.transaction = counted
    return opened
