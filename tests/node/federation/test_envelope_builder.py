"""The envelope builder and the destination's loop over a real store and real certificates.

A drafts row an older gwx wrote, which the header check now refuses, is set aside on its own
(deleted, audited, logged with its id and code) and never stops the destination's other drafts
from being sealed and queued. An error the kinds' table says to retry — our HSM away while
sealing, our own CRL stale when judging the peer's certificates — leaves the drafts waiting and
backs the destination off, instead of failing documents or calling the peer every few seconds. A
draft whose retry window ended while the node was stopped is sealed at the restart for one attempt,
as an envelope would be sent once more; given up only when that attempt fails."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging

import pytest
from aiohttp import web

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.ids import new_id
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import SenderStatus
from node.config import StoreSettings, load_config
from node.context import NodeContext
from node.federation.destination_credentials import REFETCH_SECONDS
from node.federation.destination_queue import DestinationQueue
from node.federation.outbound import NewMessage, Outbound
from node.federation.tls import client_context, server_context
from node.federation.transport import PeerClient, PeerUnreachable
from node.ops.metrics import Registry
from node.store import Draft, OutboxDocument, OutboxRecipient, OutgoingLink, PeerState
from node.store.opener import open_store
from node.store.sqlite.db import to_db_time
from pki.certificates import pem
from pki.errors import HsmError
from pki.pkcs11 import Pkcs11Signer
from tests.node.federation import processing_support
from tests.node.federation.federation_support import node_context
from tests.node.federation.processing_support import SENDER, A, close_processor, know_the_city, open_processor
from tests.support import PASSPHRASE, FakeClock

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



async def _wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _run_until_backing_off(queue: DestinationQueue, store) -> PeerState:
    async def backing_off() -> bool:
        peer = await store.peers.get_peer("city")
        return peer is not None and peer.state == "backing-off"

    task = asyncio.create_task(queue.run())
    try:
        await _wait_until(backing_off)
    finally:
        queue.stop()
        await asyncio.wait_for(task, 5)
    return await store.peers.get_peer("city")


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
            peer = await _run_until_backing_off(queue, store)
            assert (peer.failures, peer.last_error.code, peer.retry_at > now) == (1, "PKI_HSM_ERROR", True)
            [draft] = await store.drafts.drafts_for("city")  # still there, built once the HSM is back
            assert draft.header == header
            assert await store.audit.events(message_id=header.message_id) == []
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())


@contextlib.asynccontextmanager
async def city_answering(node_dir):
    """The city's ``GET /peer/v1/node`` over mutual TLS on loopback, each call recorded: yields the
    city's context, its URL, the calls and the runner (cleaned up at the end, or earlier by a test)."""
    city = node_context(node_dir / "city")
    node_info = json.dumps({"node_id": "city", "signing_cert": pem(city.signer.certificate).decode(),
                            "encryption_cert": pem(city.decryption_key.certificate).decode(),
                            "chain": [pem(c).decode() for c in city.intermediates]})
    calls: list[str] = []

    async def info(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(text=node_info, content_type="application/json")

    app = web.Application()
    app.router.add_get("/peer/v1/node", info)
    runner = web.AppRunner(app)
    await runner.setup()
    creds = node_dir / "city" / "credentials"
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(
        creds / "tls.crt", creds / "tls.key", creds / "root.crt", PASSPHRASE))
    try:
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        yield city, f"https://127.0.0.1:{port}", calls, runner
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def county_outbound(node_dir, tmp_path, city_url: str, clock: FakeClock | None = None):
    """The county's outbound, its peer list pointing at ``city_url``: yields (ctx, store, outbound)."""
    config = load_config(node_dir / "county")
    config = dataclasses.replace(config, directory=node_dir / "county", peers=tuple(
        dataclasses.replace(p, url=city_url) for p in config.peers))
    timed = {"clock": clock} if clock is not None else {}
    ctx = NodeContext.load(config, PASSPHRASE, **timed)
    store = await open_store(tmp_path / "data", node_id="county", **timed)
    own = config.credentials_dir
    client = PeerClient(client_context(own / "tls.crt", own / "tls.key", config.trust_root_path, PASSPHRASE))
    outbound = Outbound(ctx, store, client, Registry(), rand=lambda: 0.0)
    try:
        yield ctx, store, outbound
    finally:
        await close_processor(store, outbound)


@pytest.mark.parametrize(("later", "code"), [
    (dt.timedelta(days=8), "PKI_REVOCATION_STALE"),  # our CRL is good for 7 days: a kind that retries
    (dt.timedelta(days=365 * 30), "PKI_CERT_EXPIRED"),  # the peer's certificate expired: one that gives up
])
def test_a_peer_whose_certificates_we_cannot_accept_is_backed_off(node_dir, tmp_path, later, code):
    """The peer answers GET /peer/v1/node, but we cannot accept its certificates — our CRL is past
    its nextUpdate, or they have expired: the loop backs off and calls the peer once, not every 5 s."""
    async def run():
        clock = FakeClock(dt.datetime.now(dt.UTC).replace(microsecond=0) + later)
        async with city_answering(node_dir) as (_, url, calls, _), \
                county_outbound(node_dir, tmp_path, url, clock) as (_, store, outbound):
            payload = await store.blobs.put(b"a receipt for the city")
            header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), clock(), in_reply_to=new_id(clock()))
            async with store.transaction() as tx:
                await outbound.add(tx, [NewMessage(header, payload.digest, payload.size, "doc-1")], clock())
            peer = await _run_until_backing_off(DestinationQueue(outbound, "city"), store)
            assert (peer.failures, peer.last_error.code) == (1, code)
            assert peer.retry_at == clock() + outbound.policy.min_delay
            assert calls == ["/peer/v1/node"]
            assert len(await store.drafts.drafts_for("city")) == 1

    asyncio.run(run())


def test_a_peers_certificates_are_fetched_again_when_it_may_have_renewed(node_dir, tmp_path):
    """The stored copy of the city's certificates serves while it is fresh; they are asked of the
    city again when a receipt came signed by another certificate (it renewed), after it could not
    open what we sealed (forget_credentials), and once the copy is an hour old — except that an old
    copy still serves while the city cannot be reached."""
    async def run():
        async with city_answering(node_dir) as (city, url, calls, runner), \
                county_outbound(node_dir, tmp_path, url) as (ctx, store, outbound):
            await check(city, calls, runner, ctx, store, outbound)

    async def check(city, calls, runner, ctx, store, outbound):
        async def build(builder) -> int:
            now = ctx.clock()
            payload = await store.blobs.put(b"a receipt for the city")
            header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), now, in_reply_to=new_id(now))
            async with store.transaction() as tx:
                await outbound.add(tx, [NewMessage(header, payload.digest, payload.size, "doc-1")], now)
            await builder.build_drafts()
            assert await store.drafts.drafts_for("city") == []  # sealed and queued
            return len(calls)

        await know_the_city(node_dir, store, ctx.clock())
        builder = DestinationQueue(outbound, "city").builder
        assert await build(builder) == 0  # a fresh stored copy: the city is not asked
        builder.notice_signer(city.signer.certificate)  # a receipt signed as we expect
        assert await build(builder) == 0
        builder.notice_signer(ctx.signer.certificate)  # signed by a certificate we do not hold for it
        assert await build(builder) == 1
        assert await build(builder) == 1
        builder.forget_credentials()  # what ENV_NO_RECIPIENT_INFO from the city does
        assert await build(builder) == 2  # not from the stored copy, fresh as it is
        restarted = DestinationQueue(outbound, "city").builder
        assert await build(restarted) == 2
        await know_the_city(node_dir, store, ctx.clock() - dt.timedelta(seconds=REFETCH_SECONDS + 1))
        assert await build(DestinationQueue(outbound, "city").builder) == 3  # an hour old: asked again
        stored = await store.peer_credentials.get("city")
        assert (ctx.clock() - stored.fetched_at).total_seconds() < 60
        await runner.cleanup()  # the city away: an old copy still serves
        await know_the_city(node_dir, store, ctx.clock() - dt.timedelta(seconds=REFETCH_SECONDS + 1))
        assert await build(DestinationQueue(outbound, "city").builder) == 3

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

    def slow_first(blobs, group, sender, recipients):
        calls.append([d.header.message_id for d in group])
        if len(calls) == 1:  # a's first envelope: held until b has had its go
            entered.set()
            assert release.wait(120)
        return build(blobs, group, sender, recipients)
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


def test_a_rounds_envelopes_are_queued_in_one_commit(node_dir, tmp_path):
    """Drafts that travel alone (transport-acks of five documents) are sealed one envelope each and
    swapped for their queue rows together: one commit (one writer's turn, one fsync) for the round."""
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            await know_the_city(node_dir, store, now)
            ids = await _receipt_drafts(store, outbound, now, 5)
            commits = store.db.commits
            await DestinationQueue(outbound, "city").builder.build_drafts()
            assert store.db.commits - commits == 1
            window = await store.queue.load_active_window("city", 10)
            assert sorted(e.message_id for e in window) == sorted(ids)
            assert len({e.blob_digest for e in window}) == len(ids)  # one envelope each
            assert await store.drafts.drafts_for("city") == []
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())
