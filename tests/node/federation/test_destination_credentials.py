"""node.federation.destination_credentials over a real store, real certificates and the city's
``GET /peer/v1/node`` over mutual TLS on loopback: which encryption certificate the county seals for.

The stored copy of the peer's certificates serves while it is fresh and is asked for again when the
peer may have renewed; certificates the county cannot accept (its own CRL stale, theirs expired)
back the destination off after one call, instead of calling the peer every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json

import pytest
from aiohttp import web

from exchange_protocol.envelope import MessageType
from exchange_protocol.ids import new_id
from node.config import load_config
from node.context import NodeContext
from node.federation.destination_credentials import REFETCH_SECONDS
from node.federation.destination_queue import DestinationQueue
from node.federation.outbound import NewMessage, Outbound
from node.federation.tls import client_context, server_context
from node.federation.transport import PeerClient
from node.ops.metrics import Registry
from node.store.opener import open_store
from pki.certificates import pem
from tests.node.federation import processing_support
from tests.node.federation.federation_support import node_context
from tests.node.federation.processing_support import (
    SENDER,
    A,
    close_processor,
    know_the_city,
    run_until_backing_off,
)
from tests.support import PASSPHRASE, FakeClock

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)


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
            peer = await run_until_backing_off(DestinationQueue(outbound, "city"), store)
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
