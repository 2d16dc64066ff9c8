"""督办 across real node processes: county-a hosts 兰山区人民政府办公室 (A1), whose parent is the city's
临沂市人民政府办公室 (CITY) on the city node. A document A1 leaves unsigned past its 办理时限 is
escalated by county-a once, as a signed 督办 notice, to CITY: the supervisor lists it, webhooks on
both sides fire (to a real verifying receiver), a restart of county-a does not escalate it again,
and A1's 签收 settles it at the city. Forged and replayed 督办 envelopes are refused or change nothing.
county-b (B1's node) is provisioned and in the directory but not started: the tests only speak as it.

The grace is 0 working days here (escalated as soon as overdue) and the deadline a few seconds
ahead: these processes run on the real clock; the working-day rules are tested with a fake clock
in tests/exchange_protocol/test_supervision.py and tests/node/supervision/."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from exchange_protocol.envelope import MessageType
from exchange_protocol.model import BEIJING
from exchange_protocol.notices import Escalation
from node.localnet import send_document, wait_for
from tests.adapters.webhooks.receiver import Receiver
from tests.adapters.webhooks.test_node_webhooks import FAST_WEBHOOKS, add_webhook
from tests.node.network.network_support import (
    A1,
    A2,
    B1,
    CITY,
    CITY_LOCAL,
    UNIT_NAMES,
    RawPeer,
    db_rows,
    db_value,
    directory_network,
    forge_envelope,
    inbox_item,
    notice_meta,
    tls_context_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
FAST_SWEEP = {"grace_working_days": 0, "sweep_seconds": 0.3}


# The directory's unit tree: A1 is supervised by CITY (another node), A2's parent is A1 (the same
# node), B1 has no supervising unit.
TREE = [("city", "city", None), ("county-a", "county", "city"), ("county-b", "county", "city")]
UNITS = [{"code": CITY, "name": UNIT_NAMES[CITY], "level": "city", "node": "city"},
         {"code": CITY_LOCAL, "name": UNIT_NAMES[CITY_LOCAL], "level": "city", "node": "city"},
         {"code": A1, "name": UNIT_NAMES[A1], "level": "county", "node": "county-a", "supervisor": CITY},
         {"code": A2, "name": UNIT_NAMES[A2], "level": "county", "node": "county-a", "parent": A1},
         {"code": B1, "name": UNIT_NAMES[B1], "level": "county", "node": "county-b"}]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    hosted = {node: [{"code": u["code"], "name": u["name"]} for u in UNITS if u["node"] == node]
              for node, _, _ in TREE}
    overrides = {"city": {"webhooks": FAST_WEBHOOKS},
                 "county-a": {"webhooks": FAST_WEBHOOKS, "supervision": FAST_SWEEP},
                 "county-b": {"supervision": FAST_SWEEP}}
    with directory_network(tmp_path_factory.mktemp("supervision"), hosted, TREE, UNITS, overrides,
                           running=("city", "county-a")) as network:
        yield network


def due_in(seconds: float) -> str:
    return (dt.datetime.now(BEIJING) + dt.timedelta(seconds=seconds)).replace(microsecond=0).isoformat()


def items(node, unit: str, **query) -> list[dict]:
    return node.clerk(unit).get("/api/v1/supervision", query or None)


def test_a_late_unit_is_escalated_once_to_its_supervisor_across_nodes_until_it_signs(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    supervisor_hook, late_hook = Receiver(), Receiver()
    try:
        add_webhook(city, CITY, supervisor_hook, "document.escalated")
        add_webhook(county, A1, late_hook, "document.overdue", "document.escalated")
        meta = notice_meta(CITY_LOCAL, [A1], title="关于报送冬季安全检查情况的通知（督办）", deadline=due_in(6))
        doc_id = send_document(city, CITY_LOCAL, meta, net.body)["doc_id"]
        assert inbox_item(county, A1, doc_id)["overdue"] is False

        [duban] = wait_for(lambda: items(city, CITY), 60, what="the 督办 at the supervising unit")
        assert (duban["doc_id"], duban["unit"], duban["from_unit"], duban["status"], duban["node"]) == (
            doc_id, A1, CITY_LOCAL, "open", "county-a")
        assert duban["title"] == meta["title"] and duban["unit_name"] == UNIT_NAMES[A1]
        item = county.clerk(A1).get(f"/api/v1/inbox/{doc_id}")
        assert item["overdue"] is True and item["overdue_by"] >= 0 and item["escalated_to"] == CITY
        track = city.clerk(CITY_LOCAL).get(f"/api/v1/outbox/{doc_id}")
        assert [(r["unit"], r["overdue"]) for r in track["recipients"]] == [(A1, True)]

        wait_for(lambda: supervisor_hook.effects and len(late_hook.effects) == 2, 30, what="the webhooks")
        [told] = supervisor_hook.effects
        assert (told["type"], told["unit"], told["doc_id"], told["data"]["late_unit"]) == (
            "document.escalated", CITY, doc_id, A1)
        assert [(e["type"], e["unit"]) for e in late_hook.effects] == [("document.overdue", A1),
                                                                       ("document.escalated", A1)]
        assert supervisor_hook.refused == [] and late_hook.refused == []

        # A restart of the late unit's node does not escalate it again.
        net.stop(county)
        net.start(county)
        time.sleep(3)  # ten sweeps of the restarted node
        assert db_value(county, "SELECT COUNT(*) FROM audit WHERE action = 'inbox.escalated' AND doc_id = ?",
                        [doc_id]) == 1
        assert db_value(city, "SELECT COUNT(*) FROM received WHERE type = 'escalate'") == 1
        assert len(items(city, CITY)) == 1 and len(supervisor_hook.effects) == 1

        # A1 signs: the city's 督办 turns settled, naming who signed.
        county.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
        settled = wait_for(lambda: items(city, CITY, status="settled"), 60, what="the 督办 settled")
        assert (settled[0]["settled_as"], settled[0]["settled_by"]) == ("signed_for", f"{UNIT_NAMES[A1]}收发员")
        assert items(city, CITY, status="open") == []
        assert county.clerk(A1).get(f"/api/v1/inbox/{doc_id}")["overdue"] is False
    finally:
        supervisor_hook.stop()
        late_hook.stop()


def test_a_document_signed_in_time_is_never_escalated(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    deadline = due_in(4)
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1], deadline=deadline), net.body)["doc_id"]
    inbox_item(county, A1, doc_id)
    county.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    # Past the deadline by ten sweeps (3 s), however long the sending took (it was a fixed 10 s).
    past = dt.datetime.fromisoformat(deadline) + dt.timedelta(seconds=3) - dt.datetime.now(BEIJING)
    time.sleep(max(0.0, past.total_seconds()))
    assert db_value(county, "SELECT COUNT(*) FROM audit WHERE doc_id = ? AND action LIKE 'inbox.%' "
                            "AND action IN ('inbox.overdue', 'inbox.escalated')", [doc_id]) == 0
    assert all(i["doc_id"] != doc_id for i in items(city, CITY))


def _escalation(doc_id: str, unit: str, supervisor: str) -> Escalation:
    now = dt.datetime.now(dt.UTC)
    return Escalation(doc_id, unit, supervisor, CITY_LOCAL, "冒充的督办", now - dt.timedelta(days=5), now, 4)


def _applied(node, message_id: str) -> tuple:
    return wait_for(lambda: db_value(node, "SELECT state FROM received WHERE message_id = ?", [message_id])
                    in ("done", "failed") and
                    db_rows(node, "SELECT state, error_code FROM received WHERE message_id = ?", [message_id])[0],
                    30, what=f"{message_id} applied")


def test_forged_and_replayed_escalations_change_nothing(net):
    city, county_a, county_b = net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]
    before = len(items(city, CITY))

    # county-b speaking for A1, a unit it does not host: refused at the door.
    e = _escalation("forged-duban-0001", A1, CITY)
    _, envelope = forge_envelope(county_b, city, from_unit=A1, to_units=[CITY], payload=e.encode(),
                                 type=MessageType.ESCALATE)
    [result] = RawPeer(city, tls_context_of(county_b)).post_envelopes(envelope)[1]["results"]
    assert result["error"]["code"] == "ENV_UNIT_NOT_HOSTED", result

    # county-b escalating its own B1, but naming CITY, which the network does not make B1's supervisor.
    e = _escalation("forged-duban-0002", B1, CITY)
    message_id, envelope = forge_envelope(county_b, city, from_unit=B1, to_units=[CITY], payload=e.encode(),
                                          type=MessageType.ESCALATE)
    [result] = RawPeer(city, tls_context_of(county_b)).post_envelopes(envelope)[1]["results"]
    assert "receipt" in result
    assert _applied(city, message_id) == ("failed", "NOTICE_ESCALATION_NOT_OURS")

    # A header that says something else than the payload: refused at the door.
    _, envelope = forge_envelope(county_a, city, from_unit=A2, to_units=[CITY],
                                 payload=_escalation("forged-duban-0003", A1, CITY).encode(), type=MessageType.ESCALATE)
    [result] = RawPeer(city, tls_context_of(county_a)).post_envelopes(envelope)[1]["results"]
    assert result["error"]["code"] == "NOTICE_ESCALATION_INVALID", result

    # county-a's genuine 督办 about A1 sent twice in two envelopes, and the same envelope twice:
    # one item, one event.
    e = _escalation("replayed-duban-0004", A1, CITY)
    first_id, first = forge_envelope(county_a, city, from_unit=A1, to_units=[CITY], payload=e.encode(),
                                     type=MessageType.ESCALATE)
    second_id, second = forge_envelope(county_a, city, from_unit=A1, to_units=[CITY], payload=e.encode(),
                                       type=MessageType.ESCALATE)
    as_county = RawPeer(city, tls_context_of(county_a))
    receipts = [as_county.post_envelopes(env)[1]["results"][0]["receipt"] for env in (first, first, second)]
    assert receipts[0] == receipts[1]
    assert _applied(city, first_id) == ("done", None) and _applied(city, second_id) == ("done", None)
    assert len(items(city, CITY)) == before + 1
    assert db_value(city, "SELECT COUNT(*) FROM audit WHERE action = 'supervision.escalated' AND doc_id = ?",
                    ["replayed-duban-0004"]) == 1
