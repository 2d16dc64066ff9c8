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
certificate the city never had. The city stopped past their window, county-a back at the restart
and county-b not: the 签收 is sealed then and delivered; county-b's document has its one attempt
(its certificate asked for) and is given up with the same reason as an envelope.
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
                             "county-a": ([A1], {}), "county-b": ([B1], {})},
                            running=("city", "county-a"))  # county-b is never up: its certificate never had
    yield network
    network.stop_all()


def reason_seen_by_the_clerk(city, doc_id: str, unit: str = A1) -> tuple[str, str]:
    """The failed recipient's reason in the outbox (the web console's source) and its line in ``gwx track``."""
    row = recipients_by_unit(wait_status(city, CITY, doc_id, {unit: "failed"}, timeout=40))[unit]
    line = next(line for line in track(city, CITY, doc_id).splitlines() if line.startswith(unit))
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


def test_drafts_whose_window_ends_while_the_sender_is_stopped_get_one_attempt_at_the_restart(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    ensure_running(net, county)
    known = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]  # its certificates are had
    inbox_item(county, A1, known)
    answered = send_document(county, A1, notice_meta(A1, [CITY]), net.body)["doc_id"]
    inbox_item(city, CITY, answered)

    # County-a and county-b (never started) away. The city sends county-a a document (sealed: its attempt fails and
    # it waits for its retry time) and its clerk signs for county-a's (the 签收 is held as a draft
    # behind it); it sends county-b, whose certificate it never had, a document (a draft: nothing
    # to seal it for). The city is stopped within its window and stays so past it.
    net.stop(county)
    started = time.monotonic()
    waiting = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    wait_for(lambda: db_value(city, "SELECT q.attempts FROM queue q JOIN outgoing o ON o.message_id = q.message_id"
                                    " WHERE o.doc_id = ?", [waiting]), WINDOW, what="its first attempt, failed")
    assert city.clerk(CITY).post(f"/api/v1/inbox/{answered}/sign-for", {})["status"] == "signed_for"
    unknown = send_document(city, CITY, notice_meta(CITY, [B1]), net.body)["doc_id"]
    net.stop(city)
    assert time.monotonic() - started < WINDOW, "stopped after the window: nothing was held at the stop"
    drafts = set(db_rows(city, "SELECT destination, type FROM drafts"))
    assert {("county-a", "receipt"), ("county-b", "document")} <= drafts, drafts  # never became envelopes
    time.sleep(WINDOW + 1)

    # County-a is back when the city starts again, county-b is not. What was held for county-a is
    # delivered: the 签收 sealed at the restart, the document sent once more.
    net.start(county)
    net.start(city)
    wait_status(county, A1, answered, {CITY: "signed_for"})
    inbox_item(county, A1, waiting)
    wait_status(city, CITY, waiting, {A1: "delivered"})
    # County-b's document had its one attempt too — the certificate asked of county-b, which cannot
    # answer — and is given up, its reason saying that the window ended while the city was stopped.
    reason, line = reason_seen_by_the_clerk(city, unknown, B1)
    assert reason.startswith("QUEUE_EXPIRED: its retry window ended at "), reason
    assert "while this node was stopped (it started again at " in reason, reason
    assert "the one attempt made then failed: PEER_UNREACHABLE" in reason, reason
    assert "could not be had for the whole window" not in reason, reason
    assert "失败" in line and "while this node was stopped" in line
    [message] = [json.loads(d)["message"] for (d,) in db_rows(city, "SELECT details FROM audit WHERE action = 'draft.failed'")]
    assert reason == f"QUEUE_EXPIRED: {message}"
