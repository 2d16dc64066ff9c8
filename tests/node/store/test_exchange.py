"""Drafts, outgoing links and peer credentials survive restarts; recovery drops drafts whose payload
is gone and marks acknowledged envelopes whose payload is gone as corrupt."""

from __future__ import annotations

import asyncio

from node.store import InboundEnvelope
from node.store.sqlite.exchange import Draft, Exchange, Outgoing, StoredPeerCredentials
from tests.node.store.conftest import T0, open_store

HEADER = {"message_id": "m1", "type": "document", "from_unit": None, "to_units": [], "created": T0.isoformat(),
          "expires": T0.isoformat(), "in_reply_to": None, "max_hops": 8}


def test_drafts_links_and_credentials_persist(tmp_path):
    async def run():
        async with open_store(tmp_path) as store:
            ex = Exchange(store.db)
            ref = await store.blobs.put(b"payload")
            async with store.transaction() as tx:
                await ex.add_draft(tx, Draft("m1", "county-a", "document", HEADER, ref.digest, ref.size, T0, None))
                await ex.add_outgoing(tx, [Outgoing("m1", "doc-1", "document", "county-a", ("U1", "U2"), T0)])
            await ex.save_peer_credentials(StoredPeerCredentials("county-a", "S", "E", "", T0))
        async with open_store(tmp_path) as store:  # reopened: recovery keeps the draft's payload
            ex = Exchange(store.db)
            [draft] = await ex.drafts_for("county-a")
            assert draft.header == HEADER and await store.blobs.read_bytes(draft.payload_digest) == b"payload"
            assert (await ex.outgoing("m1")).units == ("U1", "U2")
            assert [o.message_id for o in await ex.outgoing_for("doc-1")] == ["m1"]
            assert (await ex.peer_credentials("county-a")).encryption_cert == "E"
            assert await ex.draft_counts() == {"county-a": 1}

    asyncio.run(run())


def test_recovery_drops_drafts_and_received_payloads_that_vanished(tmp_path):
    async def run():
        async with open_store(tmp_path) as store:
            ex = Exchange(store.db)
            payload = await store.blobs.put(b"draft payload")
            async with store.transaction() as tx:
                await ex.add_draft(tx, Draft("m1", "county-a", "document", HEADER, payload.digest, payload.size,
                                             T0, None))
            envelope = await store.blobs.put(b"envelope bytes")
            plain = await store.blobs.put(b"decrypted payload")
            await store.accept_inbound(InboundEnvelope("r1", envelope.digest, envelope.digest, "city", b"receipt",
                                                       "document", 14, plain.digest))
            lost = [store.blobs.path_for(payload.digest), store.blobs.path_for(plain.digest)]
        for path in lost:
            path.unlink()
        async with open_store(tmp_path) as store:
            report = store.last_recovery
            assert report.corrupt_drafts == ("m1",)
            assert report.corrupt_received == ("r1",)
            assert await Exchange(store.db).drafts_for("county-a") == []
            assert (await store.messages.get_received("r1")).state == "corrupt"
            assert [e.action for e in await store.audit.events(message_id="m1")] == ["draft.corrupt"]
            await store.audit.verify_chain()

    asyncio.run(run())
