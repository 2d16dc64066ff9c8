"""Webhooks of a real node process (``gwx node run``) to a real receiver on loopback that verifies
every signature: events arrive, a receiver down for a while gets them when it is back, dead letters
are replayed by the operator, and a kill -9 of the node mid-delivery makes exactly one effect."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from node.localnet import send_document, wait_for
from tests.adapters.webhooks.receiver import Receiver
from tests.node.network.network_support import (
    CITY,
    CITY_LOCAL,
    db_rows,
    gwx,
    inbox_item,
    log_text,
    metric,
    notice_meta,
    start_network,
    stop_network,
)

pytestmark = pytest.mark.slow

# Retries every 0.2–0.5 s, dead after 6 s of failing: the tests see the window close.
FAST_WEBHOOKS = {"min_seconds": 0.2, "max_seconds": 0.5, "window_seconds": 6, "timeout_seconds": 2}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = start_network(tmp_path_factory.mktemp("webhooks"),
                            {"city": ([CITY, CITY_LOCAL], {"webhooks": FAST_WEBHOOKS})})
    yield network
    stop_network(network)


def add_webhook(node, unit: str, receiver: Receiver, *events: str) -> str:
    args = [a for e in events for a in ("--event", e)]
    out = gwx("webhook", "add", "--dir", str(node.directory), "--unit", unit, "--url", receiver.url, *args, "--json")
    assert out.returncode == 0, out.stderr
    added = json.loads(out.stdout)
    receiver.secret = added["secret"]
    return added["id"]


def send_local(net, title: str) -> str:
    """CITY sends to CITY_LOCAL, both on the one node; returns the 公文标识."""
    return send_document(net.nodes["city"], CITY, notice_meta(CITY, [CITY_LOCAL], title=title), net.body)["doc_id"]


def rows(node, webhook_id: str) -> list[tuple]:
    return db_rows(node, "SELECT state, attempts, last_error_code FROM adapter_outbox WHERE consumer = ? ORDER BY seq",
                   (f"webhook:{webhook_id}",))


def test_events_reach_a_verifying_receiver_and_the_secret_stays_secret(net):
    node = net.nodes["city"]
    received, sender_side = Receiver(), Receiver()
    try:
        hook = add_webhook(node, CITY_LOCAL, received, "document.received")
        back = add_webhook(node, CITY, sender_side, "document.signed_for", "document.returned")
        doc_id = send_local(net, "关于做好冬季安全生产工作的通知（网络钩子）")
        wait_for(lambda: received.effects, 30, what="the received event at the receiver")
        [event] = received.effects
        assert (event["type"], event["doc_id"], event["unit"]) == ("document.received", doc_id, CITY_LOCAL)
        assert event["data"]["title"] == "关于做好冬季安全生产工作的通知（网络钩子）" and event["data"]["from_unit"] == CITY
        inbox_item(node, CITY_LOCAL, doc_id)
        node.clerk(CITY_LOCAL).post(f"/api/v1/inbox/{doc_id}/sign-for")
        wait_for(lambda: sender_side.effects, 30, what="the signed_for event for the sender")
        [signed] = sender_side.effects
        assert (signed["type"], signed["unit"], signed["data"]["recipient"]) == ("document.signed_for", CITY,
                                                                                 CITY_LOCAL)
        assert received.refused == [] and sender_side.refused == []
        wait_for(lambda: metric(node, "gwx_adapter_outbox", consumer=f"webhook:{hook}", state="done") == 1, 30,
                 what="the outbox gauge")
        # the secret: a 0600 file, never printed again (list, status, log)
        secret_file = node.directory / "webhooks" / f"{hook}.secret"
        assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
        listing = gwx("webhook", "list", "--dir", str(node.directory))
        status = gwx("node", "status", "--dir", str(node.directory))
        assert hook in listing.stdout and back in listing.stdout and f"webhook:{hook}: pending 0, done 1" in status.stdout
        for text in (listing.stdout, listing.stderr, status.stdout, log_text(node)):
            assert received.secret not in text and sender_side.secret not in text
    finally:
        received.stop()
        sender_side.stop()


def test_a_receiver_down_for_a_while_gets_the_event_once_it_is_back(net):
    node = net.nodes["city"]
    receiver = Receiver()
    try:
        hook = add_webhook(node, CITY_LOCAL, receiver, "document.received")
        receiver.close()  # nobody listens
        doc_id = send_local(net, "关于接收方暂停服务期间的通知")
        wait_for(lambda: any(r[1] >= 2 for r in rows(node, hook)), 30, what="failed attempts")
        assert rows(node, hook)[0][0] == "pending" and rows(node, hook)[0][2] == "WEBHOOK_UNREACHABLE"
        receiver.reopen()
        wait_for(lambda: receiver.effects, 30, what="the event after the receiver came back")
        assert [e["doc_id"] for e in receiver.effects] == [doc_id]
        wait_for(lambda: rows(node, hook)[0][0] == "done", 10, what="the row marked done")
    finally:
        receiver.stop()


def test_dead_letters_after_the_window_then_the_operator_replays(net):
    node = net.nodes["city"]
    receiver = Receiver(mode="503")
    try:
        hook = add_webhook(node, CITY_LOCAL, receiver, "document.received")
        doc_id = send_local(net, "关于死信重放的通知")
        wait_for(lambda: rows(node, hook) and rows(node, hook)[0][0] == "dead", 60, what="the dead letter")
        dead = gwx("webhook", "list", "--dir", str(node.directory), hook)
        assert "1 dead letter" in dead.stdout and "WEBHOOK_RECEIVER_UNAVAILABLE" in dead.stdout, dead.stdout
        assert receiver.effects == [] and len(receiver.requests) >= 3
        receiver.mode = "ok"
        replay = gwx("webhook", "replay", "--dir", str(node.directory), hook)
        assert replay.returncode == 0 and "1 dead letter(s) queued again" in replay.stdout
        wait_for(lambda: receiver.effects, 30, what="the replayed event")
        assert [e["doc_id"] for e in receiver.effects] == [doc_id]
        wait_for(lambda: rows(node, hook)[0][0] == "done", 10, what="the row marked done")
        tested = gwx("webhook", "test", "--dir", str(node.directory), hook)
        assert tested.returncode == 0 and "answered 200" in tested.stdout
        assert receiver.effects[-1]["type"] == "webhook.test"
    finally:
        receiver.stop()


def test_a_gateway_that_moved_gets_what_was_queued_for_the_old_url_under_a_new_secret(net):
    node = net.nodes["city"]
    old, new = Receiver(mode="503"), Receiver()
    try:
        hook = add_webhook(node, CITY_LOCAL, old, "document.received")
        doc_id = send_local(net, "关于短信网关迁移期间的通知")
        wait_for(lambda: any(r[1] >= 2 for r in rows(node, hook)), 30, what="failed attempts at the old URL")
        out = gwx("webhook", "change", "--dir", str(node.directory), hook, "--url", new.url, "--new-secret")
        assert out.returncode == 0 and "queued events kept" in out.stdout, out.stderr
        new.secret = out.stdout.split("new secret: ")[1].split()[0]
        assert new.secret != old.secret
        wait_for(lambda: new.effects, 30, what="the queued event at the new URL")
        assert [e["doc_id"] for e in new.effects] == [doc_id] and new.refused == []  # signed with the new secret
        wait_for(lambda: rows(node, hook)[0][0] == "done", 10, what="the row marked done")
    finally:
        old.stop()
        new.stop()


def test_kill_9_after_the_receiver_acted_and_before_the_node_committed_is_one_effect(net):
    node = net.nodes["city"]
    receiver = Receiver(mode="act_then_hold")
    try:
        hook = add_webhook(node, CITY_LOCAL, receiver, "document.received")
        doc_id = send_local(net, "关于进程被强行终止时的通知")
        wait_for(lambda: receiver.effects, 30, what="the receiver acting on the event")
        net.kill(node)  # the receiver acted and has not answered: the node never marks the row done
        assert rows(node, hook)[0][0] == "pending"
        receiver.mode = "ok"
        net.start(node)
        wait_for(lambda: rows(node, hook)[0][0] == "done", 30, what="the row done after the restart")
        [event_id] = {e["event_id"] for e in receiver.effects}
        # sent again after the crash, with the same id (more than twice if the held attempt timed out first)
        assert receiver.requests.count(event_id) >= 2 and set(receiver.requests) == {event_id}
        assert [e["doc_id"] for e in receiver.effects] == [doc_id]  # one effect
    finally:
        receiver.stop()


def test_a_webhook_removed_while_the_node_runs_gets_nothing_more_and_leaves_no_trace(net):
    node = net.nodes["city"]
    receiver = Receiver()
    try:
        hook = add_webhook(node, CITY_LOCAL, receiver, "document.received")
        send_local(net, "关于删除网络钩子之前的通知")
        wait_for(lambda: receiver.effects, 30, what="the first event")
        removed = gwx("webhook", "remove", "--dir", str(node.directory), hook)
        assert removed.returncode == 0, removed.stderr
        assert not (node.directory / "webhooks" / f"{hook}.secret").exists()
        later = send_local(net, "关于删除网络钩子之后的通知")
        inbox_item(node, CITY_LOCAL, later)
        time.sleep(2)  # the node re-reads its subscriptions every second
        assert len(receiver.effects) == 1 and later not in {e["doc_id"] for e in receiver.effects}
        status = json.loads(gwx("node", "status", "--dir", str(node.directory), "--json").stdout)
        assert f"webhook:{hook}" not in status["adapters"]
        assert db_rows(node, "SELECT COUNT(*) FROM adapter_cursors WHERE consumer = ?", (f"webhook:{hook}",)) == [(0,)]
    finally:
        receiver.stop()
