"""adapters.webhooks.delivery against a real receiver on loopback: each answer classified with its
typed error — 2xx done; 5xx, 429, refused connections, garbage and slowness retried; 4xx and
redirects final (and never followed)."""

from __future__ import annotations

import asyncio
import socket
import threading

import aiohttp
import pytest

from adapters.events import adapter_event
from adapters.webhooks.delivery import WebhookConsumer
from adapters.webhooks.signing import new_secret
from node.error_kinds import Disposition, disposition
from node.store import WebhookSubscription
from pki.errors import GwxError
from tests.adapters.support import U_A, U_B
from tests.adapters.webhooks.receiver import Receiver
from tests.support import T0

SECRET = new_secret()
EVENT = adapter_event("node-a", 7, T0, "inbox.add", {"doc_id": "D1", "unit": U_A}, {}, title="关于…的通知")


def sub(url: str, types=("document.received",)) -> WebhookSubscription:
    return WebhookSubscription("0a1b2c3d", U_A, url, tuple(types), T0)


def deliver(url: str, timeout: float = 2.0, secret: str = SECRET) -> None:
    import datetime as dt

    async def main():
        async with aiohttp.ClientSession() as session:
            consumer = WebhookConsumer(sub(url), lambda: secret, session, lambda: dt.datetime.now(dt.UTC), timeout)
            await consumer.deliver(EVENT)
    asyncio.run(main())


@pytest.fixture
def receiver():
    r = Receiver(SECRET)
    yield r
    r.stop()


def test_wants_the_unit_and_types_subscribed():
    consumer = WebhookConsumer(sub("http://x/"), lambda: SECRET, None, None)
    assert consumer.name == "webhook:0a1b2c3d" and consumer.wants(EVENT)
    other_unit = adapter_event("node-a", 8, T0, "inbox.add", {"doc_id": "D1", "unit": U_B}, {})
    registered = adapter_event("node-a", 9, T0, "inbox.registered", {"doc_id": "D1", "unit": U_A}, {})
    assert not consumer.wants(other_unit) and not consumer.wants(registered)


def test_a_verified_delivery_is_done(receiver):
    deliver(receiver.url)
    assert [e["event_id"] for e in receiver.effects] == [EVENT.event_id]
    assert receiver.effects[0]["data"]["title"] == "关于…的通知"


@pytest.mark.parametrize("mode, code, final", [
    ("503", "WEBHOOK_RECEIVER_UNAVAILABLE", False), ("500", "WEBHOOK_RECEIVER_UNAVAILABLE", False),
    ("429", "WEBHOOK_RECEIVER_UNAVAILABLE", False), ("400", "WEBHOOK_REFUSED", True),
    ("redirect", "WEBHOOK_REDIRECTED", True), ("slow", "WEBHOOK_TIMEOUT", False),
    ("huge", "WEBHOOK_RECEIVER_UNAVAILABLE", False)])
def test_each_answer_is_its_typed_error(receiver, mode, code, final):
    """Only ``slow`` is meant to outlast the timeout (0.5 s against an answer after 3 s); the others
    have 10 s, so that a loaded machine cannot make them a timeout. ``huge`` sends its first MiB and
    never the rest: a client that read the whole answer would end in WEBHOOK_TIMEOUT, not 503-like."""
    receiver.mode = mode
    receiver.slow_seconds = 3.0
    with pytest.raises(GwxError) as info:
        deliver(receiver.url, timeout=0.5 if mode == "slow" else 10.0)
    assert info.value.code == code, info.value
    assert (disposition(info.value) is Disposition.GIVE_UP) is final
    assert receiver.requests == [EVENT.event_id]  # a redirect is not followed: one request only
    assert receiver.effects == []
    assert len(info.value.message) < 400  # a huge answer is not read, let alone quoted


def test_a_wrong_secret_is_refused_by_the_receiver_and_final(receiver):
    with pytest.raises(GwxError) as info:
        deliver(receiver.url, secret=new_secret())
    assert info.value.code == "WEBHOOK_REFUSED" and "WEBHOOK_SIGNATURE_INVALID" in info.value.message
    assert receiver.refused == ["WEBHOOK_SIGNATURE_INVALID"]


def test_nobody_listening_and_a_garbage_answer_are_retried():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GwxError) as info:
        deliver(f"http://127.0.0.1:{port}/hook")
    assert info.value.code == "WEBHOOK_UNREACHABLE"

    server = socket.create_server(("127.0.0.1", 0))
    def answer_garbage():
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"\x00\x01 this is not HTTP \r\n\r\n" * 10)
        conn.close()
    threading.Thread(target=answer_garbage, daemon=True).start()
    with pytest.raises(GwxError) as info:
        deliver(f"http://127.0.0.1:{server.getsockname()[1]}/hook")
    server.close()
    assert info.value.code == "WEBHOOK_UNREACHABLE" and disposition(info.value) is Disposition.RETRY
