"""A document whose retry window ends while the *sending* node is stopped: nothing is lost for it.

The city's retry window is a few seconds here. Its clerk sends one document while county-a is down
and the city keeps running: the window closes with the peer never taking it, and the ledger says so
(``QUEUE_EXPIRED``: the peer did not take it for the whole window, how many attempts, the last
error). Then another, and the city node is stopped before the window ends and started again after,
county-a back by then: the envelope's header lives a day past the window, so the city sends it once
more at the restart and county-a receives it, once. Then a third, the city stopped past its window
again but county-a still down at the restart: the one attempt fails and the document is given up,
the ledger saying why — the window ended while this node was stopped, when it started again, and
what the one attempt since got — so the clerk does not read it as the county being unreachable for
all that time.

The same holds for what was never sealed into an envelope — *drafts*: a 签收 held back (the Nagle
rule) behind an envelope waiting for county-a, and a document for county-b, whose encryption
certificate the city never had. Stopped past their window with the peers back at the restart, both
are delivered; with county-a still away, the 签收 is given up after its one attempt, with the same
reason in the city's ledger.
"""

from __future__ import annotations

import json
import time

import pytest

from node.localnet import send_document, wait_for
from tests.node.network.network_support import (
    A1,
    B1,
    CITY,
    FAST_RETRY,
    db_rows,
    db_value,
    ensure_running,
    inbox_item,
    notice_meta,
    recipients_by_unit,
    start_network,
    track,
    wait_status,
)

# Real node processes on loopback: `make test` runs them, `make test-fast` leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
WINDOW = 4.0  # the city's retry window, seconds


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = start_network(tmp_path_factory.mktemp("senderstopped"),
                            {"city": ([CITY], {"retry": {**FAST_RETRY, "window_seconds": WINDOW}}),
                             "county-a": ([A1], {}), "county-b": ([B1], {})})
    yield network
    network.stop_all()


def reason_seen_by_the_clerk(city, doc_id: str) -> tuple[str, str]:
    """The failed recipient's reason in the outbox (the web console's source) and its line in ``gwx track``."""
    row = recipients_by_unit(wait_status(city, CITY, doc_id, {A1: "failed"}, timeout=40))[A1]
    line = next(line for line in track(city, CITY, doc_id).splitlines() if line.startswith(A1))
    return row["reason"], line


def test_a_window_that_ends_while_the_sender_is_stopped_is_told_apart_from_an_unreachable_peer(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    # The city knows county-a (its certificates fetched, one document delivered) before anything fails.
    first = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    inbox_item(county, A1, first)

    # 1. County-a down, the city running for the whole window: the peer did not take it.
    net.stop(county)
    unreachable = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    reason, line = reason_seen_by_the_clerk(city, unreachable)
    assert reason.startswith("QUEUE_EXPIRED: retry window closed before delivery: the peer did not take it"), reason
    assert "PEER_UNREACHABLE" in reason and "stopped" not in reason, reason
    assert "失败" in line and "QUEUE_EXPIRED" in line

    # 2. Another while county-a is still down; the city is stopped before its window ends and
    # started again after it, county-a back by then: delivered at the restart, once.
    comes_back = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    assert recipients_by_unit(city.clerk(CITY).get(f"/api/v1/outbox/{comes_back}"))[A1]["status"] == "queued"
    net.stop(city)
    time.sleep(WINDOW + 1)
    net.start(county)
    net.start(city)
    inbox_item(county, A1, comes_back)
    wait_status(city, CITY, comes_back, {A1: "delivered"})
    assert db_value(county, "SELECT COUNT(*) FROM inbox WHERE doc_id = ?", [comes_back]) == 1

    # 3. Once more, but county-a is still down when the city starts again: the one attempt fails,
    # and the document is given up with a reason saying so.
    net.stop(county)
    stopped = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    assert recipients_by_unit(city.clerk(CITY).get(f"/api/v1/outbox/{stopped}"))[A1]["status"] == "queued"
    net.stop(city)
    time.sleep(WINDOW + 1)
    net.start(city)
    reason, line = reason_seen_by_the_clerk(city, stopped)
    assert reason.startswith("QUEUE_EXPIRED: its retry window ended at "), reason
    assert "while this node was stopped (it started again at " in reason, reason
    assert "the one attempt made then failed: PEER_UNREACHABLE" in reason, reason
    assert "the peer did not take it" not in reason, reason
    assert "失败" in line and "while this node was stopped" in line


def held_as_drafts_at_the_stop(net, city, county_doc: str, *, unknown_peer: bool) -> tuple[str, str | None]:
    """County-a (whose certificates the city holds) away: the city sends it a document (sealed; its
    attempt fails, it waits for its retry time) and its clerk signs for ``county_doc`` (the 签收 is
    held as a draft behind it); with ``unknown_peer`` it also sends county-b, away and whose
    certificate it never had, a document (a draft: nothing to seal it for). Then the city is stopped
    within the window and stays so past it. Returns the ids of the documents sent."""
    started = time.monotonic()
    waiting = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    wait_for(lambda: db_value(city, "SELECT q.attempts FROM queue q JOIN outgoing o ON o.message_id = q.message_id"
                                    " WHERE o.doc_id = ?", [waiting]), WINDOW, what="its first attempt, failed")
    assert city.clerk(CITY).post(f"/api/v1/inbox/{county_doc}/sign-for", {})["status"] == "signed_for"
    unknown = send_document(city, CITY, notice_meta(CITY, [B1]), net.body)["doc_id"] if unknown_peer else None
    net.stop(city)
    assert time.monotonic() - started < WINDOW, "stopped after the window: nothing was held at the stop"
    # What the stopped node holds: the 签收 (and county-b's document) never became envelopes (the
    # document for county-a may not have either, if county-a was backed off when it was sent).
    drafts = set(db_rows(city, "SELECT destination, type FROM drafts"))
    assert {("county-a", "receipt")} | ({("county-b", "document")} if unknown_peer else set()) <= drafts, drafts
    time.sleep(WINDOW + 1)
    return waiting, unknown


def test_drafts_whose_window_ends_while_the_sender_is_stopped_get_one_attempt_at_the_restart(net):
    city, county, county_b = net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]
    ensure_running(net, county, county_b)
    known = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]  # its certificates are had
    inbox_item(county, A1, known)
    first, second = (send_document(county, A1, notice_meta(A1, [CITY]), net.body)["doc_id"] for _ in range(2))
    inbox_item(city, CITY, first)
    inbox_item(city, CITY, second)

    # 1. Both peers back when the city starts again: everything held is delivered.
    net.stop(county)
    net.stop(county_b)
    waiting, unknown = held_as_drafts_at_the_stop(net, city, first, unknown_peer=True)
    net.start(county)
    net.start(county_b)
    net.start(city)
    wait_status(county, A1, first, {CITY: "signed_for"})
    inbox_item(county, A1, waiting)
    inbox_item(county_b, B1, unknown)
    wait_status(city, CITY, unknown, {B1: "delivered"})

    # 2. County-a still away at the restart: the held 签收 has its one attempt, then is given up,
    # and the city's ledger says the window ended while the node was stopped.
    net.stop(county)
    held_as_drafts_at_the_stop(net, city, second, unknown_peer=False)
    net.start(city)
    [(reason,)] = wait_for(lambda: db_rows(city, "SELECT last_error_message FROM queue WHERE type = 'receipt'"
                                                 " AND state = 'bounced'"), 40, what="the 签收 given up")
    assert reason.startswith("its retry window ended at "), reason
    assert "while this node was stopped (it started again at " in reason, reason
    assert "the one attempt made then failed: PEER_UNREACHABLE" in reason, reason
    assert "the peer did not take it" not in reason, reason
    audited = [json.loads(d)["message"] for (d,) in db_rows(city, "SELECT details FROM audit WHERE action = 'queue.bounce'")]
    assert reason in audited
    assert db_value(city, "SELECT COUNT(*) FROM audit WHERE action = 'draft.failed'") == 0  # sealed, not dropped
