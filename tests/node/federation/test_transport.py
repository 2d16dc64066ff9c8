"""The sender's side of the batch answer: a peer with valid certificates answering badly.

A real aiohttp server on loopback presents the county node's real TLS certificate (mutual TLS,
our own CA) and answers ``POST /peer/v1/envelopes`` with whatever the test says; the city node's
real :class:`PeerClient` sends it frames. Whatever the peer answers, the client ends with one
result per frame or a typed, transient error — never a traceback, never a receipt it was not given.
"""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from aiohttp import web

from exchange_protocol.batch_answer import FrameAnswer, Refusal, encode_batch_answer
from exchange_protocol.ids import new_id
from node.config import Peer
from node.federation import transport
from node.federation.tls import client_context, server_context
from node.federation.transport import OutgoingFrame, PeerClient, PeerProtocolError, PeerServerError
from node.ops.metrics import Registry
from pki.certificates import utcnow
from tests.node.federation.federation_support import provision_county_and_city
from tests.support import PASSPHRASE


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    return provision_county_and_city(tmp_path_factory.mktemp("transport"), "传输测试CA", {}, {})


def _frames(tmp_path, n: int) -> list[OutgoingFrame]:
    frames = []
    for i in range(n):
        message_id = new_id(utcnow())
        path = tmp_path / f"frame-{i}"
        path.write_bytes(message_id.encode())  # not a frame: the peer under test only reads the id
        frames.append(OutgoingFrame(message_id, path, path.stat().st_size))
    return frames


async def _send(node_dir, frames, answer, *, piece: int | None = None, registry: Registry | None = None):
    """POST ``frames`` to a county peer whose handler is ``answer(ids posted) -> (status, body)``;
    with ``piece``, the peer writes the body in pieces of that size, pausing between them, so it
    reaches the client in several TCP reads."""
    async def envelopes(request: web.Request) -> web.StreamResponse:
        data = await request.read()
        status, body = answer([data[i:i + 36].decode() for i in range(0, len(data), 36)])
        if piece is None:
            return web.Response(body=body, status=status, content_type="application/json")
        resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        for at in range(0, len(body), piece):
            await resp.write(body[at:at + piece])
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    county, city = node_dir / "county" / "credentials", node_dir / "city" / "credentials"
    app = web.Application()
    app.router.add_post("/peer/v1/envelopes", envelopes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(
        county / "tls.crt", county / "tls.key", county / "root.crt", PASSPHRASE))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    client = PeerClient(client_context(city / "tls.crt", city / "tls.key", city / "root.crt", PASSPHRASE),
                        registry=registry)
    try:
        return await client.send_frames(Peer("county", f"https://127.0.0.1:{port}"), frames)
    finally:
        await client.close()
        await runner.cleanup()


def test_a_full_batch_answer_arriving_in_many_reads_is_read_whole(node_dir, tmp_path):
    """64 receipts (~150 KB) sent in 8 KB pieces: every frame gets its receipt, none is retried."""
    frames = _frames(tmp_path, 64)
    receipts = {f.message_id: f.message_id.encode() * 60 for f in frames}  # ~2.2 KB each, as real ones

    def answer(ids):
        return 200, encode_batch_answer([FrameAnswer(i, receipt=receipts[i]) for i in ids])
    results = asyncio.run(_send(node_dir, frames, answer, piece=8 * 1024))
    assert len(encode_batch_answer([FrameAnswer(i, receipt=r) for i, r in receipts.items()])) > 150_000
    assert [(r.message_id, r.receipt, r.error_code) for r in results] == [
        (f.message_id, receipts[f.message_id], None) for f in frames]


def test_an_answer_over_the_cap_is_a_typed_transient_error(node_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(transport, "MAX_BATCH_ANSWER", 4096)
    frames = _frames(tmp_path, 4)

    def answer(ids):
        return 200, encode_batch_answer([FrameAnswer(i, receipt=b"r" * 2000) for i in ids])
    with pytest.raises(PeerProtocolError, match="over 4096"):
        asyncio.run(_send(node_dir, frames, answer, piece=1024))


def test_a_partial_answer_keeps_its_receipts_and_the_rest_is_tried_again(node_dir, tmp_path):
    frames = _frames(tmp_path, 3)

    def answer(ids):
        return 400, encode_batch_answer([FrameAnswer(ids[0], receipt=b"receipt-0"),
                                         FrameAnswer(None, refusal=Refusal("ENV_TRUNCATED", "ends early"))])
    first, second, third = asyncio.run(_send(node_dir, frames, answer))
    assert first.receipt == b"receipt-0"
    assert (second.error_code, third.error_code) == ("ENV_TRUNCATED", "PEER_BATCH_BROKEN")
    assert [r.message_id for r in (first, second, third)] == [f.message_id for f in frames]


@pytest.mark.parametrize("body", [
    b"<html>502 Bad Gateway</html>",
    b'{"results": [{"message_id": "m-1", "receipt": "cmVjZWlwdA=="}]}',
    b'{"results": "all fine"}',
    b'{"results": [{"message_id": null, "receipt": "cmVjZWlwdA=="}]}',
    b'{"results": [{"message_id": "ID", "receipt": "not base64!"}]}',
    b'{"results": [{"message_id": "ID", "error": {"code": "", "message": "x"}}]}',
    b'{"results": [{"message_id": "ID", "receipt": "cmVjZWlwdA=="}, {"message_id": "ID", "receipt": "eA=="}]}',
])
def test_a_malformed_answer_is_a_typed_transient_error(node_dir, tmp_path, body):
    frames = _frames(tmp_path, 1)
    with pytest.raises(PeerProtocolError) as info:
        asyncio.run(_send(node_dir, frames, lambda ids: (200, body.replace(b"ID", ids[0].encode()))))
    assert info.value.details["cause"].startswith("PEER_ANSWER_")


def test_a_server_error_is_transient_whatever_its_body(node_dir, tmp_path):
    with pytest.raises(PeerServerError):
        asyncio.run(_send(node_dir, _frames(tmp_path, 2), lambda ids: (503, b'{"results": []}')))


def test_a_request_refused_whole_is_sent_again_envelope_by_envelope(node_dir, tmp_path):
    frames = _frames(tmp_path, 2)

    def answer(ids):
        if len(ids) > 1:
            return 413, json.dumps({"error": {"code": "ENV_TOO_LARGE", "message": "too large"}}).encode()
        return 200, encode_batch_answer([FrameAnswer(ids[0], receipt=base64.b64decode("cmVjZWlwdA=="))])
    results = asyncio.run(_send(node_dir, frames, answer))
    assert [r.receipt for r in results] == [b"receipt", b"receipt"]


def test_the_bytes_sent_to_a_peer_count_every_post_resends_included(node_dir, tmp_path):
    """gwx_peer_bytes_sent_total: what the node put on its uplink — a batch refused whole and sent
    again envelope by envelope is on the wire twice."""
    frames = _frames(tmp_path, 3)

    def answer(ids):
        if len(ids) > 1:
            return 413, json.dumps({"error": {"code": "ENV_TOO_LARGE", "message": "too large"}}).encode()
        return 200, encode_batch_answer([FrameAnswer(ids[0], receipt=b"receipt")])
    registry = Registry()
    asyncio.run(_send(node_dir, frames, answer, registry=registry))
    size = sum(f.size for f in frames)
    assert f'gwx_peer_bytes_sent_total{{peer="county"}} {2 * size}' in registry.render()
