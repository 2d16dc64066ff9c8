"""An operator's purge of an envelope relayed for another node: refused while it is in flight, and once
at rest the origin is told by a bounce naming the operator's reason (as when a relay gives up by itself).
A move that does not apply to the row (a hold of a held one, a release of a bounced one) says why in
the words `gwx node queue list` uses."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_bundle
from exchange_protocol.notices import decode_notice
from node.errors import StoreConflict
from node.federation.queue_admin import QueueAdmin
from node.store import OutboundItem
from pki.certificates import load_certificates
from tests.node.federation import processing_support
from tests.node.federation.processing_support import SENDER, A, close_processor, open_processor

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)


def test_a_purged_relayed_envelope_bounces_to_its_origin_with_the_reason(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        city = processing_support.node_context(node_dir / "city")
        enc = load_certificates((node_dir / "county" / "credentials" / "enc.crt").read_bytes())[0]
        try:
            draft = HeaderDraft.new(MessageType.DOCUMENT, "city", "county", SENDER, (A,), ctx.clock(),
                                    dt.timedelta(days=1))
            ref = await store.blobs.put(seal_bundle([draft], b"a payload", city.sender, [Recipient(enc)]).data)
            await store.queue.enqueue(OutboundItem(draft.message_id, "town-hub", ref.digest, ref.size, "document"))
            admin = QueueAdmin(outbound)
            [row] = await admin.list()
            assert (row["message_id"], row["state"], row["doc_id"]) == (draft.message_id, "incoming", None)
            await store.queue.load_active_window("town-hub", 10)  # on the wire now
            with pytest.raises(StoreConflict) as info:
                await admin.purge(draft.message_id, actor="operator:张", reason="下级节点已撤销")
            assert "hold it first" in info.value.message
            await admin.hold(draft.message_id, actor="operator:张")
            with pytest.raises(StoreConflict) as info:  # said as the operator sees the row, not the store's words
                await admin.hold(draft.message_id, actor="operator:张")
            assert info.value.message == f"message {draft.message_id} is already on hold: only a waiting " \
                                         "message or one being sent can be held"
            row = await admin.purge(draft.message_id, actor="operator:张", reason="下级节点已撤销")
            assert row["state"] == "bounced" and row["last_error"]["code"] == "QUEUE_PURGED"
            for move in (admin.release, admin.hold):
                with pytest.raises(StoreConflict) as info:
                    await move(draft.message_id, actor="operator:张")
                assert "is given up (bounced): only a" in info.value.message
                assert info.value.details["state"] == "bounced"
            [back] = await store.drafts.drafts_for("city")
            assert (back.header.type, back.header.in_reply_to) == (MessageType.BOUNCE, draft.message_id)
            reason = decode_notice(back.payload).reason
            assert "QUEUE_PURGED" in reason and "下级节点已撤销" in reason and "张" in reason
            [event] = [e for e in await store.audit.events(message_id=draft.message_id) if e.action == "queue.bounce"]
            assert event.actor == "operator:张"
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())
