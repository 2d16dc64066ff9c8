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
"""

from __future__ import annotations

import time

import pytest

from node.localnet import send_document
from tests.node.network.network_support import (
    A1,
    CITY,
    FAST_RETRY,
    db_value,
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
                             "county-a": ([A1], {})})
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
