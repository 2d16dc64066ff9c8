"""A relay giving up: the bounce it sends names the message it gave up on, and goes to its origin."""

from __future__ import annotations

import asyncio
import datetime as dt

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_bundle
from exchange_protocol.ids import new_id
from exchange_protocol.notices import Notice, decode_notice
from node.federation.relay import bounce_draft
from node.store import ErrorInfo, OutboundItem
from pki.certificates import load_certificates
from pki.unit_code import make_unit_code
from tests.node.federation import processing_support
from tests.node.federation.processing_support import SENDER, A, close_processor, open_processor

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)
B = make_unit_code("11371302MB0000091")


def test_the_bounce_for_a_row_of_a_bundle_names_that_rows_message(node_dir, tmp_path):
    """A relay holds a bundle from the city (one frame, two headers, one next hop) and gives up on its
    second row: the bounce goes to the city and names the second message and its units, not the
    first header's. (The two destinations are this network's two nodes: what matters is that the
    rows share one frame.)"""
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        city = processing_support.node_context(node_dir / "city")
        enc = {n: load_certificates((node_dir / n / "credentials" / "enc.crt").read_bytes())[0]
               for n in ("county", "city")}
        try:
            now = ctx.clock()
            drafts = sorted((HeaderDraft.new(MessageType.DOCUMENT, "city", dest, SENDER, (unit,), now,
                                             dt.timedelta(days=1)) for dest, unit in (("county", A), ("city", B))),
                            key=lambda d: d.message_id)
            frame = seal_bundle(drafts, b"a payload for both", city.sender,
                                [Recipient(enc[d.destination_node]) for d in drafts]).data
            ref = await store.blobs.put(frame)
            second = drafts[1]
            await store.queue.enqueue(OutboundItem(second.message_id, "town-hub", ref.digest, ref.size, "document"))
            [entry] = await store.queue.load_active_window("town-hub", 10)
            back = await bounce_draft(outbound, entry, ErrorInfo("ENV_UNIT_NOT_HOSTED", "not here"))
            assert back is not None
            assert (back.header.type, back.header.destination_node, back.header.in_reply_to) == (
                MessageType.BOUNCE, "city", second.message_id)
            notice = decode_notice(back.payload)  # kept in the draft row
            assert notice.doc_id is None and notice.units == second.to_units and "ENV_UNIT_NOT_HOSTED" in notice.reason
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())


def test_a_relay_does_not_bounce_its_own_messages_nor_a_bounce(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        city = processing_support.node_context(node_dir / "city")
        enc = load_certificates((node_dir / "county" / "credentials" / "enc.crt").read_bytes())[0]
        try:
            now = ctx.clock()
            bounce = HeaderDraft.new(MessageType.BOUNCE, "city", "county", None, (A,), now, dt.timedelta(days=1),
                                     in_reply_to=new_id(now))
            payload = Notice(MessageType.BOUNCE, None, (A,), now, reason="gone").encode()
            ref = await store.blobs.put(seal_bundle([bounce], payload, city.sender, [Recipient(enc)]).data)
            await store.queue.enqueue(OutboundItem(bounce.message_id, "town-a", ref.digest, ref.size, "bounce"))
            [entry] = await store.queue.load_active_window("town-a", 10)
            assert await bounce_draft(outbound, entry, ErrorInfo("QUEUE_EXPIRED", "too late")) is None
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())
