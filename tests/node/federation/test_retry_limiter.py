"""A peer that cannot be reached is backed off, and the backoff outlives a restart: the sender keeps
waiting (no connection before retry_at), the failure count goes on where it was, and every delay is
exchange_protocol.retry's. Real store, real TLS client, a real listener that hangs up; only the
clock is fake."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from pathlib import Path

from exchange_protocol.envelope import MessageType
from exchange_protocol.ids import new_id
from exchange_protocol.retry import next_attempt
from node.config import load_config
from node.context import NodeContext
from node.federation.outbound import NewMessage, Outbound
from node.federation.retry_limiter import DEAD_AFTER_FAILURES, RetryLimiter, retry_policy
from node.federation.tls import client_context
from node.federation.transport import PeerClient, PeerUnreachable
from node.ops.metrics import Registry
from node.store.opener import open_store
from tests.node.federation import processing_support
from tests.node.federation.processing_support import (
    SENDER,
    A,
    city_envelope,
    city_package,
    close_processor,
    open_processor,
    receive,
)
from tests.support import PASSPHRASE, FakeClock

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)

T0 = dt.datetime.now(dt.UTC).replace(microsecond=0)  # certificates in node_dir are valid now


def test_the_limiter_remembers_a_backoff_across_a_restart(node_dir, tmp_path):
    policy = retry_policy(load_config(node_dir / "county").retry)

    async def run():
        clock = FakeClock(T0)
        store = await open_store(tmp_path / "data", clock=clock)
        try:
            limiter = RetryLimiter(store, "city", policy, clock, lambda: 0.5)
            for _ in range(2):
                when = await limiter.failed(PeerUnreachable("connection refused", peer="city"))
            assert when == next_attempt(2, T0, T0, policy, 0.5) and limiter.backing_off()
        finally:
            await store.close()

        store = await open_store(tmp_path / "data", clock=clock)
        try:
            limiter = RetryLimiter(store, "city", policy, clock, lambda: 0.5)
            await limiter.load()
            assert (limiter.failures, limiter.retry_at, limiter.backing_off()) == (2, when, True)
            peer = await store.peers.get_peer("city")
            assert (peer.state, peer.failures, peer.retry_at, peer.last_error.code) == (
                "backing-off", 2, when, "PEER_UNREACHABLE")
            clock.now = when
            assert not limiter.backing_off()
            for _ in range(DEAD_AFTER_FAILURES - 2):  # the count goes on from 2
                await limiter.failed(PeerUnreachable("connection refused", peer="city"))
            assert (await store.peers.get_peer("city")).state == "dead"
            await limiter.succeeded()
        finally:
            await store.close()

        store = await open_store(tmp_path / "data", clock=clock)
        try:
            limiter = RetryLimiter(store, "city", policy, clock, lambda: 0.5)
            await limiter.load()
            assert (limiter.failures, limiter.retry_at, limiter.backing_off()) == (0, None, False)
            peer = await store.peers.get_peer("city")
            assert (peer.state, peer.failures, peer.retry_at) == ("up", 0, None)
        finally:
            await store.close()

    asyncio.run(run())


async def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class _HangingUpCity:
    """A listener in the city's place that takes each connection and closes it (``connections``: the
    fake clock's time of each), and the county's context pointed at it on a fake clock from T0."""

    async def __aenter__(self) -> _HangingUpCity:
        self.connections: list[dt.datetime] = []
        self.clock = FakeClock(T0)
        self._listener = await asyncio.start_server(self._hang_up, "127.0.0.1", 0)
        return self

    def _hang_up(self, reader, writer) -> None:
        self.connections.append(self.clock.now)
        writer.close()

    def county(self, node_dir) -> NodeContext:
        port = self._listener.sockets[0].getsockname()[1]
        config = load_config(node_dir / "county")
        config = dataclasses.replace(config, directory=node_dir / "county", peers=tuple(
            dataclasses.replace(p, url=f"https://127.0.0.1:{port}") for p in config.peers))
        return NodeContext.load(config, PASSPHRASE, clock=self.clock)

    async def __aexit__(self, *exc) -> None:
        self._listener.close()
        await self._listener.wait_closed()


@contextlib.asynccontextmanager
async def _sender(ctx: NodeContext, data: Path):
    """The county's store, peer client and outbound (started by the test), closed afterwards."""
    store = await open_store(data, clock=ctx.clock)
    creds = ctx.config.credentials_dir
    client = PeerClient(client_context(creds / "tls.crt", creds / "tls.key", ctx.config.trust_root_path, PASSPHRASE))
    outbound = Outbound(ctx, store, client, Registry(), rand=lambda: 0.0)
    try:
        yield store, outbound
    finally:
        await outbound.stop(1.0)
        await client.close()
        await store.close()


async def _receipt_for_the_city(store, outbound: Outbound) -> None:
    """A draft: the city's certificate was never had, so it cannot be sealed until the city answers."""
    payload = await store.blobs.put(b"a receipt for the city")
    now = outbound.ctx.clock()
    async with store.transaction() as tx:
        header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), now, in_reply_to=new_id(T0))
        await outbound.add(tx, [NewMessage(header, payload.digest, payload.size, "doc-1")], now)


def test_a_healthy_peer_is_written_up_once_not_after_every_request(node_dir, tmp_path):
    """After each request the peer answered, the sender records it up; a row that says so already is
    left alone (it was a write transaction a request), one that says otherwise — this limiter's
    failure, or another worker's written meanwhile — is written up again."""
    policy = retry_policy(load_config(node_dir / "county").retry)

    async def run():
        clock = FakeClock(T0)
        store = await open_store(tmp_path / "data", clock=clock)
        try:
            written = []
            set_peer_state = store.peers.set_peer_state
            store.peers.set_peer_state = lambda *a, **k: (written.append(a[1]), set_peer_state(*a, **k))[1]
            limiter = RetryLimiter(store, "city", policy, clock, lambda: 0.5)
            for _ in range(3):
                await limiter.succeeded()
            assert written == ["up"]  # the first records the peer, the others find it so
            await limiter.failed(PeerUnreachable("connection refused", peer="city"))
            await limiter.succeeded()
            await limiter.succeeded()
            assert written == ["up", "backing-off", "up"]
            assert ((await store.peers.get_peer("city")).state, limiter.failures) == ("up", 0)
            other = RetryLimiter(store, "city", policy, clock, lambda: 0.5)  # another worker's
            await other.failed(PeerUnreachable("connection refused", peer="city"))
            await limiter.succeeded()  # this one had no failure, but the row says backing-off
            assert written[-1] == "up" and (await store.peers.get_peer("city")).state == "up"
        finally:
            await store.close()
    asyncio.run(run())


def test_a_restarted_sender_does_not_call_a_peer_that_is_backing_off(node_dir, tmp_path):
    async def run():
        async with _HangingUpCity() as city:
            ctx, clock = city.county(node_dir), city.clock

            async with _sender(ctx, tmp_path / "data") as (store, outbound):
                async def failures() -> int:
                    peer = await store.peers.get_peer("city")
                    return peer.failures if peer else 0

                await _receipt_for_the_city(store, outbound)
                await outbound.start()
                await _wait_until(lambda: _is(failures, 1))
                retry_at = (await store.peers.get_peer("city")).retry_at
                assert city.connections == [T0] and retry_at == T0 + outbound.policy.min_delay

            async with _sender(ctx, tmp_path / "data") as (store, outbound):  # restarted before retry_at
                await outbound.start()
                await asyncio.sleep(1.5)  # a round and a pause: a sender that forgot would have called by now
                assert city.connections == [T0]
                clock.now = retry_at
                outbound.wake("city")
                await _wait_until(lambda: _is(failures, 2))
                assert city.connections == [T0, retry_at]
                peer = await store.peers.get_peer("city")
                assert peer.retry_at == next_attempt(2, retry_at, retry_at, outbound.policy, 0.0)
                assert len(await store.drafts.drafts_for("city")) == 1  # still waiting to be built

    asyncio.run(run())


async def _is(read, value) -> bool:
    return await read() == value


def test_drafts_for_a_peer_whose_backoff_ended_while_its_failure_was_written_are_tried_again(node_dir, tmp_path):
    """On a loaded machine, writing a failure may take longer than the backoff it sets: the backoff
    has ended by the time the sender goes to sleep. With nothing sealed for the peer (only a draft,
    its certificate never had) the sender must still try again then, not idle for a minute."""
    async def run():
        async with _HangingUpCity() as city, _sender(city.county(node_dir), tmp_path / "data") as (store, outbound):
            write_failure = store.peers.set_peer_state

            async def slow_write(*args, **kwargs):
                await write_failure(*args, **kwargs)
                city.clock.now += outbound.policy.max_delay  # the write outlasted the backoff it wrote

            store.peers.set_peer_state = slow_write
            await _receipt_for_the_city(store, outbound)
            await outbound.start()
            await _wait_until(lambda: _is_at_least(lambda: len(city.connections), 3))  # never woken: it tries by itself
            assert len(await store.drafts.drafts_for("city")) == 1  # still waiting to be built

    asyncio.run(run())


async def _is_at_least(count, n: int) -> bool:
    return count() >= n


def test_the_processor_retries_by_the_same_function_and_stops_at_the_window(node_dir, tmp_path):
    """Applying an acknowledged message that may succeed later (a notice overtaking its document) is
    retried when exchange_protocol.retry says, within the retry window counted from acknowledgement;
    past that window it is refused, not retried for ever."""
    import io
    import json
    import zipfile

    from exchange_protocol.notices import Notice

    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        processor.rand = lambda: 0.25
        try:
            package = await asyncio.to_thread(city_package, node_dir, [A])
            doc = await asyncio.to_thread(city_envelope, node_dir, MessageType.DOCUMENT, [A], package)
            await receive(store, doc, package)  # accepted, not yet applied
            with zipfile.ZipFile(io.BytesIO(package)) as z:
                doc_id = json.loads(z.read("metadata.json"))["id"]
            recall = Notice(MessageType.RECALL, doc_id, (A,), ctx.clock(), by="市政府办公室收发员").encode()
            early = await asyncio.to_thread(city_envelope, node_dir, MessageType.RECALL, [A], recall,
                                            doc.header.message_id)
            received = await receive(store, early, recall)

            before = ctx.clock()
            await processor._process(received)
            after = ctx.clock()
            row = await store.messages.get_received(received.message_id)
            assert (row.state, row.attempts, row.error_code) == ("new", 1, "NOTICE_EARLY")
            retry_at = await store.messages.next_inbound_retry()
            assert next_attempt(1, received.received_at, before, processor.policy, 0.25) <= retry_at
            assert retry_at <= next_attempt(1, received.received_at, after, processor.policy, 0.25)

            window = processor.policy.max_age
            stale = dataclasses.replace(row, received_at=ctx.clock() - window - dt.timedelta(seconds=1))
            await processor._process(stale)  # the window closed: refused, not deferred again
            row = await store.messages.get_received(received.message_id)
            assert (row.state, row.attempts, row.error_code) == ("failed", 1, "NOTICE_EARLY")
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())
