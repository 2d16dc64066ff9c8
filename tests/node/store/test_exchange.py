"""Drafts, outgoing links and peer credentials survive restarts; recovery drops drafts whose payload
is gone and marks acknowledged envelopes whose payload is gone as corrupt."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.errors import EnvelopeHeaderInvalid
from exchange_protocol.ids import new_id
from node.errors import StoreCorrupt
from node.store import Draft, InboundEnvelope, OutgoingLink, StoredPeerCredentials, UnreadableDraft
from node.store.sqlite.db import to_db_time
from tests.node.store.conftest import open_store, queued_item
from tests.support import T0

UNIT_A, UNIT_B = "91350100M000100Y43", "11100000000013127D"
HEADER = HeaderDraft.new(MessageType.DOCUMENT, "city", "county-a", UNIT_A, (UNIT_B,), T0, dt.timedelta(days=3))
M1 = HEADER.message_id


def test_drafts_links_and_credentials_persist(tmp_path):
    async def run():
        async with open_store(tmp_path, node_id="city") as store:
            ref = await store.blobs.put(b"payload")
            async with store.transaction() as tx:
                await store.drafts.add_draft(tx, Draft(HEADER, ref.digest, ref.size, T0, None))
                await store.links.add_links(tx, [OutgoingLink(M1, "doc-1", "document", "county-a", ("U1", "U2"), T0)])
            await store.peer_credentials.save(StoredPeerCredentials("county-a", "S", "E", "", T0))
        async with open_store(tmp_path, node_id="city") as store:  # reopened: recovery keeps the draft's payload
            [draft] = await store.drafts.drafts_for("county-a")
            assert draft.header == HEADER and await store.blobs.read_bytes(draft.payload_digest) == b"payload"
            assert (await store.links.link(M1)).units == ("U1", "U2")
            assert [o.message_id for o in await store.links.links_for("doc-1")] == [M1]
            assert (await store.peer_credentials.get("county-a")).encryption_cert == "E"
            assert await store.drafts.draft_counts() == {"county-a": 1}

    asyncio.run(run())


def test_our_queued_documents_come_with_their_queue_state_and_nothing_finished_or_relayed(tmp_path):
    """What the rerouter reads in one statement: each document of ours still in the queue, in flight
    and held ones too, with its state; not one sent, not a notice, not a relayed envelope."""
    async def run():
        async with open_store(tmp_path, node_id="city") as store:
            ids = [new_id(T0) for _ in range(5)]
            await store.queue.enqueue(await queued_item(store, ids[0], "county-a"))
            await store.queue.load_active_window("county-a", 1)  # in flight
            await store.queue.enqueue_many([await queued_item(store, m, "county-a") for m in ids[1:]])
            async with store.transaction() as tx:
                await store.links.add_links(tx, [OutgoingLink(m, f"doc-{i}", "notice" if i == 3 else "document",
                                                              "county-a", (UNIT_B,), T0)
                                                 for i, m in enumerate(ids[:4])])  # ids[4] relayed: no link
            await store.queue.hold(ids[1], actor="operator")
            await store.queue.mark_sent([ids[2]], None)
            queued = {link.message_id: (link.doc_id, state) for link, state in await store.links.queued_documents()}
            assert queued == {ids[0]: ("doc-0", "active"), ids[1]: ("doc-1", "hold")}

    asyncio.run(run())


def test_a_draft_whose_payload_is_in_its_row_survives_recovery_without_a_blob(tmp_path):
    """A notice's bytes kept in its draft row: no blob exists for it, and recovery (which drops a
    draft whose payload blob is missing) keeps it; bytes that do not match the digest are refused."""
    notice = HeaderDraft.new(MessageType.RECEIPT, "county-a", "city", UNIT_B, (UNIT_A,), T0, dt.timedelta(days=3),
                             in_reply_to=M1)
    data = b'{"v":1,"type":"receipt"}'
    digest = hashlib.sha256(data).hexdigest()

    async def run():
        async with open_store(tmp_path, node_id="county-a") as store:
            async with store.transaction() as tx:
                await store.drafts.add_draft(tx, Draft(notice, digest, len(data), T0, None, data))
            with pytest.raises(StoreCorrupt):
                async with store.transaction() as tx:
                    await store.drafts.add_draft(tx, Draft(HEADER, digest, len(data), T0, None, b"other bytes"))
        assert not list((tmp_path / "blobs").rglob(digest))
        async with open_store(tmp_path, node_id="county-a") as store:
            assert store.last_recovery.corrupt_drafts == ()
            [draft] = await store.drafts.drafts_for("city")
            assert (draft.header, draft.payload, draft.payload_digest) == (notice, data, digest)
            assert await store.referenced([digest]) == set()  # nothing for garbage collection to keep

    asyncio.run(run())


def test_recovery_drops_drafts_and_received_payloads_that_vanished(tmp_path):
    async def run():
        async with open_store(tmp_path, node_id="city") as store:
            payload = await store.blobs.put(b"draft payload")
            async with store.transaction() as tx:
                await store.drafts.add_draft(tx, Draft(HEADER, payload.digest, payload.size, T0, None))
            envelope = await store.blobs.put(b"envelope bytes")
            plain = await store.blobs.put(b"decrypted payload")
            await store.accept_inbound(InboundEnvelope("r1", envelope.digest, envelope.digest, "city", b"receipt",
                                                       "document", 14, plain.digest))
            lost = [store.blobs.path_for(payload.digest), store.blobs.path_for(plain.digest)]
        for path in lost:
            path.unlink()
        async with open_store(tmp_path, node_id="city") as store:
            report = store.last_recovery
            assert report.corrupt_drafts == (M1,)
            assert report.corrupt_received == ("r1",)
            assert await store.drafts.drafts_for("county-a") == []
            assert (await store.messages.get_received("r1")).state == "corrupt"
            assert [e.action for e in await store.audit.events(message_id=M1)] == ["draft.corrupt"]
            await store.audit.verify_chain()

    asyncio.run(run())


async def _legacy_draft(store, header: dict, destination: str = "county-a") -> None:
    """A drafts row exactly as gwx wrote it before drafts held the HeaderDraft's JSON form."""
    ref = await store.blobs.put(b"payload")
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO drafts (message_id, destination, type, header, payload_digest, payload_size, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (header["message_id"], destination, header["type"], json.dumps(header, ensure_ascii=False), ref.digest,
             ref.size, to_db_time(T0), None))


def test_a_draft_written_in_the_old_form_is_read_as_the_same_header(tmp_path):
    created = T0 + dt.timedelta(microseconds=123456)  # the old form kept microseconds
    reply_to = new_id(T0)
    old = {"message_id": new_id(T0), "type": "receipt", "from_unit": UNIT_B, "to_units": [UNIT_A],
           "created": created.isoformat(), "expires": (created + dt.timedelta(days=8)).isoformat(),
           "in_reply_to": reply_to, "max_hops": 4}

    async def run():
        async with open_store(tmp_path, node_id="city") as store:
            await _legacy_draft(store, old)
            [draft] = await store.drafts.drafts_for("county-a")
            assert draft.header == HeaderDraft(old["message_id"], MessageType.RECEIPT, "city", "county-a", UNIT_B,
                                               (UNIT_A,), T0, T0 + dt.timedelta(days=8), reply_to, 4)
            sealed = draft.header.complete(draft.payload_size, b"\x01" * 32)  # what the queue does next
            assert sealed.origin_node == "city" and sealed.to_units == (UNIT_A,)

    asyncio.run(run())


def test_an_unreadable_draft_row_comes_back_with_its_typed_error(tmp_path):
    async def run():
        async with open_store(tmp_path, node_id="city") as store:
            await _legacy_draft(store, {"message_id": new_id(T0), "type": "document", "from_unit": UNIT_A,
                                        "to_units": [UNIT_B], "created": "yesterday", "expires": None,
                                        "in_reply_to": None, "max_hops": 8})
            [row] = await store.drafts.drafts_for("county-a")  # in its place: it does not hide the others
            assert isinstance(row, UnreadableDraft) and isinstance(row.error, EnvelopeHeaderInvalid)

    asyncio.run(run())


def test_a_forward_cut_off_before_its_local_delivery_is_found_again_once(tmp_path):
    """interrupted_local_forwards: a 转发 to two units of this node, its rows still queued, is one
    delivery to resume, with the forwarder's package and the cover's message (both backends: the
    query once read SQLite's json_each and bare columns beside GROUP BY, which PostgreSQL refused)."""
    from exchange_protocol.kinds import Kind, Role
    from exchange_protocol.states import ReceiverStatus, SenderStatus
    from node.store import InboxRow
    from node.store.forwards import ForwardedCopy

    async def main():
        async with open_store(tmp_path) as store:
            package = await store.blobs.put(b"the forwarded document's package")
            units = ("11100000000013127D", "111000000000131358")
            async with store.transaction() as tx:
                await store.messages.add_inbox(InboxRow(
                    doc_id="doc-1", unit="91350100M000100Y43", role=Role.MAIN, from_unit="91350100M000100Y99",
                    title="关于开展检查的通知", kind=Kind.NOTICE, status=ReceiverStatus.PENDING,
                    package_digest=package.digest, received_at=T0, message_id="msg-in"), tx=tx)
                await store.forwards.add(tx, [ForwardedCopy("doc-1", u, "cover-1", "91350100M000100Y43", "node-a",
                                                             SenderStatus.QUEUED.value, created_at=T0) for u in units],
                                         "clerk")
                await store.links.add_links(tx, [OutgoingLink("fwd-1", "doc-1", "forward", "node-a", units, T0),
                                                 OutgoingLink("cov-1", "cover-1", "document", "node-a", units, T0)])
            found = await store.links.interrupted_local_forwards("node-a")
            assert [(f.message_id, f.from_unit, f.units, f.package_digest, f.cover_message_id) for f in found] == [
                ("fwd-1", "91350100M000100Y43", units, package.digest, "cov-1")]
    asyncio.run(main())
