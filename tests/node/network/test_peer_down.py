"""A peer that is down for a while, then back: nothing is lost, the operator can see what waits.

While the county node is stopped the city's clerk keeps sending; the operator's ``gwx node status``
shows the peer backing off and the documents waiting — as drafts when the peer was never reached
(its encryption certificate is not known yet), as deferred envelopes when it was. Once the county
node is back, the queue drains by itself and every document is delivered. On an international network
and on a 国密 one (@every_profile: SM2 signatures, SM4/SM2 envelopes, SM3 digests, an OFD body; the
deferred envelopes are resent and their SM3-bound receipts verified after the peer's return).
"""

from __future__ import annotations

import json

import pytest

from node.localnet import send_document, wait_for
from tests.node.network.network_support import (
    A1,
    CITY,
    city_and_county,
    db_rows,
    every_profile,
    gwx,
    inbox_item,
    notice_meta,
    recipients_by_unit,
    verify_audit_chain,
    wait_status,
)

# Real node processes on loopback: `make test` runs them, `make test-fast` leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


networks = city_and_county("peerdown")


def status_of(node) -> dict:
    out = gwx("node", "status", "--dir", str(node.directory), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def peer_state(status: dict, peer: str) -> dict | None:
    return next((p for p in status["peers"] if p["node_id"] == peer), None)


def submit(net, n: int) -> list[str]:
    city = net.nodes["city"]
    return [send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"] for _ in range(n)]


@every_profile
@pytest.mark.parametrize("phase,waiting_as", [("never-reached", "draft"), ("known", "deferred")])
def test_documents_wait_while_the_peer_is_down_and_drain_when_it_returns(net, phase, waiting_as):
    city, county = net.nodes["city"], net.nodes["county-a"]
    net.stop(county)
    doc_ids = submit(net, 3)
    for doc_id in doc_ids:
        tracking = city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")
        assert recipients_by_unit(tracking)[A1]["status"] == "queued"

    def backing_off():
        status = status_of(city)
        peer = peer_state(status, "county-a")
        waiting = status["queues"].get("county-a", {}).get(waiting_as, 0)
        return status if peer and peer["state"] in ("backing-off", "dead") and waiting >= 3 else None
    status = wait_for(backing_off, 30, interval=0.3, what="county-a backing off with documents waiting")
    peer = peer_state(status, "county-a")
    assert peer["failures"] >= 1 and peer["last_error"].startswith("PEER_UNREACHABLE")

    def text_shows_them_waiting():
        # Asked again while a retry has them in flight for a moment (the retry loop runs every second).
        text = gwx("node", "status", "--dir", str(city.directory))
        assert text.returncode == 0, text.stderr
        return text.stdout if "→ county-a: " in text.stdout and f"{waiting_as} " in text.stdout else None
    stdout = wait_for(text_shows_them_waiting, 30, interval=0.3, what=f"gwx node status showing {waiting_as} envelopes")
    assert "county-a: backing-off" in stdout or "county-a: dead" in stdout
    assert "PEER_UNREACHABLE" in stdout

    net.start(county)
    for doc_id in doc_ids:
        inbox_item(county, A1, doc_id)
        wait_status(city, CITY, doc_id, {A1: "delivered"})

    def drained():
        status = status_of(city)
        peer = peer_state(status, "county-a")
        queue = status["queues"].get("county-a", {})
        unfinished = {k: v for k, v in queue.items() if k not in ("sent", "bounced")}
        return status if peer and peer["state"] == "up" and not unfinished else None
    drained_status = wait_for(drained, 30, interval=0.3, what="the queue drained and the peer up")
    assert drained_status["queues"]["county-a"].get("bounced", 0) == 0
    # The error the peer was backed off for stays on its row; the text says it came before "up".
    text = gwx("node", "status", "--dir", str(city.directory))
    assert text.returncode == 0, text.stderr
    line = next(line for line in text.stdout.splitlines() if line.strip().startswith("county-a: up since"))
    assert "last error before that: PEER_" in line, line
    rows = db_rows(county, "SELECT doc_id, COUNT(*) FROM inbox GROUP BY doc_id")
    assert all(n == 1 for _, n in rows) and set(doc_ids) <= {d for d, _ in rows}
    assert verify_audit_chain(city) > 0 and verify_audit_chain(county) > 0
