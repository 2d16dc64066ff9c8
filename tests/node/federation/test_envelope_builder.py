"""The envelope builder and the destination's loop over a real store and real certificates.

A drafts row an older gwx wrote, which the header check now refuses, is set aside on its own
(deleted, audited, logged with its id and code) and never stops the destination's other drafts
from being sealed and queued. An error the kinds' table says to retry — our HSM away while
sealing — leaves the drafts waiting and backs the destination off, instead of failing documents.
A draft whose retry window ended while the node was stopped is sealed at the restart for one
attempt, as an envelope would be sent once more; given up only when that attempt fails. Two
PostgreSQL workers seal each draft once. A small envelope (a notice, a transport-ack) gets no file:
its bytes commit with its queue row, survive a restart and garbage collection while queued, and the
city opens them. (The peer's certificates a draft is sealed for:
test_destination_credentials.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import logging

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.ids import new_id
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import SenderStatus
from node.config import StoreSettings
from node.federation import envelope_builder
from node.federation.destination_queue import DestinationQueue
from node.federation.outbound import NewMessage, Outbound
from node.federation.tls import client_context
from node.federation.transport import PeerClient, PeerUnreachable
from node.ops.metrics import Registry
from node.store import Draft, OutboxDocument, OutboxRecipient, OutgoingLink
from node.store.opener import open_store
from node.store.sqlite.db import to_db_time
from pki.errors import HsmError
from pki.pkcs11 import Pkcs11Signer
from tests.node.federation import processing_support
from tests.node.federation.federation_support import node_context
from tests.node.federation.processing_support import (
    SENDER,
    A,
    close_processor,
    know_the_city,
    open_processor,
    run_until_backing_off,
)
from tests.support import PASSPHRASE

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)


async def _old_bounce_row(store, expires_at: dt.datetime | None, now: dt.datetime, *, type: str = "bounce",
                          from_unit: str | None = None) -> str:
    """A message queued with no recipient unit, exactly as the old processor wrote its bounces."""
    message_id = new_id(now)
    header = {"message_id": message_id, "type": type, "from_unit": from_unit, "to_units": [],
              "created": now.isoformat(), "expires": (now + dt.timedelta(days=8)).isoformat(),
              "in_reply_to": None if type == "document" else new_id(now), "max_hops": 8}
    ref = await store.blobs.put(f"an old {type}".encode())
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO drafts (message_id, destination, type, header, payload_digest, payload_size,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, "city", type, json.dumps(header), ref.digest, ref.size, to_db_time(now),
             to_db_time(expires_at) if expires_at else None))
    return message_id


def test_an_old_draft_the_header_check_refuses_is_set_aside_and_the_others_are_built(node_dir, tmp_path,
                                                                                     caplog):
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            await know_the_city(node_dir, store, now)
            expired = await _old_bounce_row(store, now - dt.timedelta(seconds=1), now)
            waiting = await _old_bounce_row(store, None, now)
            payload = await store.blobs.put(b"a receipt for the city")
            async with store.transaction() as tx:
                header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), now,
                                         in_reply_to=new_id(now))
                [good] = await outbound.add(tx, [NewMessage(header, payload.digest, payload.size, "doc-1")],
                                            now)

            queue = DestinationQueue(outbound, "city")
            with caplog.at_level(logging.ERROR, logger="gwx.outbound"):
                await queue.builder.drop_expired(now)
                assert await queue.builder.has_drafts()
                await queue.builder.build_drafts()

            assert await store.drafts.drafts_for("city") == []
            window = await store.queue.load_active_window("city", 10)
            assert [e.message_id for e in window] == [good]  # the good draft was sealed and queued
            for bad in (expired, waiting):
                [event] = await store.audit.events(message_id=bad)
                assert (event.action, event.details["error"]) == ("draft.failed", "ENV_INVALID_FIELD")
                assert any(r.message_id == bad and r.code == "ENV_INVALID_FIELD" for r in caplog.records)
            await store.audit.verify_chain()
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())


def test_the_document_an_unreadable_draft_carried_fails_for_its_recipients(node_dir, tmp_path):
    """Its sender sees the document failed, with the reason, instead of queued for ever."""
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            message_id = await _old_bounce_row(store, None, now, type="document", from_unit=A)
            package = await store.blobs.put(b"package")
            doc = OutboxDocument(doc_id="doc-1", from_unit=A, title="关于测试的通知", kind=Kind.NOTICE,
                                 package_digest=package.digest, created_at=now)
            await store.messages.add_outbox(doc, [OutboxRecipient(unit=SENDER, role=Role.MAIN,
                                                                  status=SenderStatus.QUEUED, destination_node="city")],
                                            actor="clerk-1")
            async with store.transaction() as tx:
                await store.links.add_links(tx, [OutgoingLink(message_id, "doc-1", "document", "city", (SENDER,), now)])

            await DestinationQueue(outbound, "city").builder.build_drafts()  # no peer needed to set it aside

            [row] = (await store.messages.get_outbox("doc-1")).recipients
            assert row.status == SenderStatus.FAILED.value and row.reason.startswith("ENV_INVALID_FIELD")
            assert await store.drafts.drafts_for("city") == []
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())


def test_an_unreadable_row_comes_back_in_its_place_not_as_an_error(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            bad = await _old_bounce_row(store, None, now)
            payload = await store.blobs.put(b"a receipt")
            header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), now, in_reply_to=new_id(now))
            async with store.transaction() as tx:
                await store.drafts.add_draft(tx, Draft(header, payload.digest, payload.size, now, None))
            rows = await store.drafts.drafts_for("city")
            unreadable = [r for r in rows if not isinstance(r, Draft)]
            assert [r.message_id for r in unreadable] == [bad]
            assert unreadable[0].error.code == "ENV_INVALID_FIELD"
            assert [r.header for r in rows if isinstance(r, Draft)] == [header]
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())



def test_an_hsm_away_while_sealing_leaves_the_draft_and_backs_off(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            await know_the_city(node_dir, store, now)
            payload = await store.blobs.put(b"a receipt for the city")
            header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), now, in_reply_to=new_id(now))
            async with store.transaction() as tx:
                await outbound.add(tx, [NewMessage(header, payload.digest, payload.size, "doc-1")], now)
            # The node's signing key on a token whose module cannot be loaded now (an HSM away).
            ctx.signer = Pkcs11Signer(tmp_path / "no-such-pkcs11.so", "gwx", "pin", "sign",
                                      certificate=ctx.signer.certificate)

            queue = DestinationQueue(outbound, "city")
            with pytest.raises(HsmError):
                await queue.builder.build_drafts()
            peer = await run_until_backing_off(queue, store)
            assert (peer.failures, peer.last_error.code, peer.retry_at > now) == (1, "PKI_HSM_ERROR", True)
            [draft] = await store.drafts.drafts_for("city")  # still there, built once the HSM is back
            assert draft.header == header
            assert await store.audit.events(message_id=header.message_id) == []
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())


async def _expired_draft(ctx, store, destination: str, created: dt.datetime, header_ttl: dt.timedelta,
                         window_end: dt.datetime) -> str:
    header = HeaderDraft.new(MessageType.DOCUMENT, ctx.node_id, destination, A, (SENDER,), created, header_ttl)
    payload = await store.blobs.put(b"a document's package")
    async with store.transaction() as tx:
        await store.drafts.add_draft(tx, Draft(header, payload.digest, payload.size, created, window_end))
    return header.message_id


@pytest.mark.parametrize("case", ["sealed, its attempt fails", "no certificate to be had", "header expired",
                                  "ended while running"])
def test_a_draft_past_its_window_at_the_restart(node_dir, tmp_path, case):
    """The destination's round at a restart past a draft's retry window. One whose window ended while
    the node was stopped, its header alive, is sealed for the one attempt an envelope gets (the city,
    whose certificates we hold, listens nowhere: it fails, and the envelope is given up with that
    attempt's error); with no certificate to be had for it (town-a, no peer of ours), getting it was
    the attempt. One whose header has expired too is given up untried, one whose window ended while
    the node ran as never reached — each reason saying which, as a clerk reads it."""
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            await know_the_city(node_dir, store, now)
            destination = "town-a" if case == "no certificate to be had" else "city"
            ttl = dt.timedelta(minutes=30) if case == "header expired" else dt.timedelta(days=1, hours=1)
            message_id = await _expired_draft(ctx, store, destination, now - dt.timedelta(hours=1), ttl,
                                              now - dt.timedelta(minutes=5))
            if case == "ended while running":
                outbound.started_at = now - dt.timedelta(hours=1)
            queue = DestinationQueue(outbound, destination)
            if case == "sealed, its attempt fails":
                with pytest.raises(PeerUnreachable):
                    await queue._round()
                entry = await store.queue.get(message_id)
                assert entry is not None and entry.state == "bounced"
                assert outbound.failures.value(destination="city", code="PEER_UNREACHABLE") == 1  # one attempt
                reason = entry.last_error.message
            else:
                await queue._round()
                assert await store.queue.get(message_id) is None  # never sealed
                [event] = await store.audit.events(message_id=message_id)
                assert (event.action, event.details["error"]) == ("draft.failed", "QUEUE_EXPIRED")
                reason = event.details["message"]
            assert await store.drafts.drafts_for(destination) == []
            if case == "ended while running":
                assert reason.startswith("retry window closed before the peer could be reached"), reason
            else:
                assert "while this node was stopped" in reason, reason
                tried = "the one attempt made then failed: PEER_UNREACHABLE" in reason
                assert tried == (case != "header expired"), reason
                assert ("not tried since" in reason) == (case == "header expired"), reason
            failures = outbound.failures.value(destination=destination, code="PEER_UNREACHABLE")
            await queue._round()  # nothing left: no second attempt
            assert outbound.failures.value(destination=destination, code="PEER_UNREACHABLE") == failures
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())


async def _county_worker(node_dir, data_dir, dsn: str, worker: str, lease_seconds: float = 30.0):
    """A worker of the county on the PostgreSQL database ``dsn``: its own context, store and outbound queue,
    over the blob directory every worker shares."""
    ctx = node_context(node_dir / "county")
    store = await open_store(data_dir, node_id=ctx.node_id, clock=ctx.clock,
                             settings=StoreSettings(backend="postgresql", dsn=dsn, worker=worker,
                                                    lease_seconds=lease_seconds))
    creds = ctx.config.credentials_dir
    outbound = Outbound(ctx, store, PeerClient(client_context(creds / "tls.crt", creds / "tls.key",
                                                             ctx.config.trust_root_path, PASSPHRASE)), Registry())
    return ctx, store, outbound


def _blob_files(data_dir) -> int:
    return sum(1 for p in (data_dir / "blobs" / "sha256").rglob("*") if p.is_file())


async def _receipt_drafts(store, outbound, now, count: int) -> list[str]:
    """``count`` receipts for the city waiting as drafts (each travels alone), their message ids."""
    ids = []
    for n in range(count):
        payload = await store.blobs.put(f"receipt {n} for the city".encode())
        header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), now, in_reply_to=new_id(now))
        async with store.transaction() as tx:
            await outbound.add(tx, [NewMessage(header, payload.digest, payload.size, f"doc-{n}")], now)
        ids.append(header.message_id)
    return ids


def test_two_workers_seal_each_draft_once_and_neither_fails_for_the_other(node_dir, tmp_path, postgres_server):
    """Two workers of the county on one PostgreSQL database seal the city's drafts at the same moment:
    every draft becomes one envelope (one queue row, one sealed blob), and neither worker's sealing
    raises — an error there is what the destination's loop counts as the city's failure and backs
    the city off for (:meth:`DestinationQueue.run`), for nothing the city did."""
    dsn, data_dir = postgres_server.new_database(), tmp_path / "data"

    async def run():
        (ctx, a, out_a), (_, b, out_b) = [await _county_worker(node_dir, data_dir, dsn, w) for w in ("a", "b")]
        try:
            now = ctx.clock()
            await know_the_city(node_dir, a, now)
            for ctx_ in (ctx, out_b.ctx):  # every envelope a file: one thrown away would be counted
                ctx_.config = dataclasses.replace(ctx_.config, store=dataclasses.replace(ctx_.config.store,
                                                                                         inline_max_bytes=0))
            ids = await _receipt_drafts(a, out_a, now, 6)
            before = _blob_files(data_dir)

            outcomes = await asyncio.gather(DestinationQueue(out_a, "city").builder.build_drafts(),
                                            DestinationQueue(out_b, "city").builder.build_drafts(),
                                            return_exceptions=True)

            assert [o for o in outcomes if o is not None] == []
            assert await a.drafts.draft_destinations() == []
            window = await a.queue.load_active_window("city", 100)
            assert sorted(e.message_id for e in window) == sorted(ids)  # each sealed draft queued once
            assert _blob_files(data_dir) - before == len(ids)  # and sealed once: no envelope thrown away
            assert await a.peers.get_peer("city") is None or (await a.peers.get_peer("city")).failures == 0
            await a.audit.verify_chain()
        finally:
            for store, outbound in ((a, out_a), (b, out_b)):
                await close_processor(store, outbound)

    asyncio.run(run())


def test_a_round_longer_than_the_draft_lease_keeps_its_drafts_from_the_other_worker(node_dir, tmp_path,
                                                                                     postgres_server, monkeypatch):
    """Worker a's round outlasts its lease on the drafts it claimed (its first envelope takes three leases
    to seal: an HSM slow to answer, a large payload): the round renews the lease, so worker b, building
    meanwhile, takes none of them — each draft is sealed once (not by both, one copy thrown away at the
    swap) and queued once."""
    import threading

    from node.federation import envelope_builder

    lease = 2.0  # real seconds (the store's clock is the node's): renewed every third while the round runs
    dsn, data_dir = postgres_server.new_database(), tmp_path / "data"
    entered, release, calls = threading.Event(), threading.Event(), []
    build = envelope_builder._build_bundle

    def slow_first(blobs, group, sender, recipients, inline_max):
        calls.append([d.header.message_id for d in group])
        if len(calls) == 1:  # a's first envelope: held until b has had its go
            entered.set()
            assert release.wait(120)
        return build(blobs, group, sender, recipients, 0)  # a file each: one sealed twice would be counted
    monkeypatch.setattr(envelope_builder, "_build_bundle", slow_first)

    async def run():
        (ctx, a, out_a), (_, b, out_b) = [await _county_worker(node_dir, data_dir, dsn, w, lease) for w in ("a", "b")]
        try:
            now = ctx.clock()
            await know_the_city(node_dir, a, now)
            ids = await _receipt_drafts(a, out_a, now, 4)
            before = _blob_files(data_dir)
            round_a = asyncio.ensure_future(DestinationQueue(out_a, "city").builder.build_drafts())
            assert await asyncio.to_thread(entered.wait, 120)
            await asyncio.sleep(lease * 1.5)  # a's first lease has run out: only a renewal keeps the drafts a's
            await DestinationQueue(out_b, "city").builder.build_drafts()
            assert len(calls) == 1, calls  # b sealed nothing: every draft was a's
            release.set()
            await round_a
            assert await a.drafts.draft_destinations() == []
            window = await a.queue.load_active_window("city", 100)
            assert sorted(e.message_id for e in window) == sorted(ids)
            assert sorted(m for c in calls for m in c) == sorted(ids)  # each sealed once
            assert _blob_files(data_dir) - before == len(ids)
        finally:
            release.set()
            for store, outbound in ((a, out_a), (b, out_b)):
                await close_processor(store, outbound)

    asyncio.run(run())


@pytest.mark.parametrize("held_bytes, commits", [(None, 1), (1, 5)], ids=["one-commit", "past-the-budget"])
def test_a_rounds_envelopes_are_queued_in_one_commit_up_to_its_memory_budget(node_dir, tmp_path, monkeypatch,
                                                                              held_bytes, commits):
    """Drafts that travel alone (transport-acks of five documents) are sealed one envelope each and
    swapped for their queue rows together: one commit (one writer's turn, one fsync) for the round.
    The small envelopes wait in memory for it, but no more than ROUND_HELD_BYTES of them: past it,
    what is sealed is queued and the round goes on — every draft queued once, in more commits."""
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            await know_the_city(node_dir, store, now)
            ids = await _receipt_drafts(store, outbound, now, 5)
            if held_bytes is not None:
                monkeypatch.setattr(envelope_builder, "ROUND_HELD_BYTES", held_bytes)
            before = store.db.commits
            await DestinationQueue(outbound, "city").builder.build_drafts()
            assert store.db.commits - before == commits
            window = await store.queue.load_active_window("city", 10)
            assert sorted(e.message_id for e in window) == sorted(ids)
            assert len({e.blob_digest for e in window}) == len(ids)  # one envelope each
            assert await store.drafts.drafts_for("city") == []
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_small_envelope_commits_with_its_queue_row_and_a_large_one_is_a_file(node_dir, tmp_path, backend, request):
    """Each transport-ack a receiving node sends used to cost a blob file and two fsyncs of its own;
    up to ``[store] inline_max_bytes`` the sealed frame now commits with its queue row, in the same
    transaction. What the city receives is unchanged: after a restart and a garbage collection the
    queued bytes are the envelope sealed, and the city opens them; a frame above the limit is a file."""
    from exchange_protocol.envelope_seal import open_envelope_bytes

    dsn = request.getfixturevalue("postgres_server").new_database() if backend == "postgresql" else None

    async def run():
        if dsn is None:
            ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        else:  # the bytes written in the locked transaction (node.store.postgresql.inline_ahead)
            ctx, store, outbound = await _county_worker(node_dir, tmp_path / "data", dsn, "a")
        city = node_context(node_dir / "city")
        try:
            now = ctx.clock()
            await know_the_city(node_dir, store, now)
            small = await _receipt_drafts(store, outbound, now, 2)
            files = _blob_files(tmp_path / "data")
            await DestinationQueue(outbound, "city").builder.build_drafts()
            assert _blob_files(tmp_path / "data") == files  # no file for the small envelopes
            # A limit just above these (a signature's DER length varies by a byte or two), far below 4 KiB.
            limit = max(e.size for e in await store.queue.load_active_window("city", 10)) + 64
            ctx.config = dataclasses.replace(ctx.config, store=dataclasses.replace(ctx.config.store,
                                                                                   inline_max_bytes=limit))
            same = await _receipt_drafts(store, outbound, now, 1)  # under the limit: still no file
            payload = await store.blobs.put(b"x" * 4096)  # sealed, above the limit
            header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), now, in_reply_to=new_id(now))
            async with store.transaction() as tx:
                large = await outbound.add(tx, [NewMessage(header, payload.digest, payload.size, "doc-big")], now)
            files = _blob_files(tmp_path / "data")
            await DestinationQueue(outbound, "city").builder.build_drafts()
            assert _blob_files(tmp_path / "data") == files + 1  # the large one only
        finally:
            await close_processor(store, outbound)

        store_settings = ctx.config.store if dsn is None else StoreSettings(backend="postgresql", dsn=dsn, worker="a")
        reopened = await open_store(tmp_path / "data", node_id=ctx.node_id, clock=ctx.clock, settings=store_settings)
        try:
            await reopened.collect_garbage(grace_seconds=0)  # queued: kept
            window = await reopened.queue.load_active_window("city", 10)
            assert sorted(e.message_id for e in window) == sorted(small + same + large)
            for entry in window:
                frame = await reopened.blobs.read_bytes(entry.blob_digest)
                assert hashlib.sha256(frame).hexdigest() == entry.blob_digest and len(frame) == entry.size
                opened, plaintext = open_envelope_bytes(frame, city.trust_policy(), city.decryption_keys, "city",
                                                        city.clock())
                assert opened.header.message_id == entry.message_id
                assert opened.header.type is MessageType.RECEIPT and plaintext
        finally:
            await reopened.close()

    asyncio.run(run())
