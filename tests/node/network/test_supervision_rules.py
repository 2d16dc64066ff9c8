"""The network's 督办 rules come from the signed directory: a running node whose node.toml leaves the
grace at its default (3 working days) does not escalate a document overdue by seconds while its
directory sets nothing, and escalates it, to the supervising unit on another node, once the root
operator publishes a directory version whose ``[supervision]`` sets the grace to 0 — without the
node being restarted or its node.toml touched (node.supervision.settings.rules_in_force). Real
processes (``gwx node run``) on the real clock; the directory built from a source and signed as
``gwx net build`` does."""

from __future__ import annotations

import time

import pytest

from node.localnet import send_document, wait_for
from pki.keystore import write_public_file
from tests.node.network.network_support import (
    A1,
    CITY,
    CITY_LOCAL,
    UNIT_NAMES,
    db_value,
    directory_network,
    inbox_item,
    notice_meta,
    signed_directory,
)
from tests.node.network.test_supervision import due_in, items

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TREE = [("city", "city", None), ("county-a", "county", "city")]
UNITS = [{"code": CITY, "name": UNIT_NAMES[CITY], "level": "city", "node": "city"},
         {"code": CITY_LOCAL, "name": UNIT_NAMES[CITY_LOCAL], "level": "city", "node": "city"},
         {"code": A1, "name": UNIT_NAMES[A1], "level": "county", "node": "county-a", "supervisor": CITY}]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    hosted = {node: [{"code": u["code"], "name": u["name"]} for u in UNITS if u["node"] == node]
              for node, _, _ in TREE}
    # county-a's node.toml: the default grace (3 working days), swept often.
    overrides = {"county-a": {"supervision": {"sweep_seconds": 0.3}}}
    with directory_network(tmp_path_factory.mktemp("supervision-rules"), hosted, TREE, UNITS, overrides) as network:
        yield network


def escalations(node, doc_id: str) -> int:
    return db_value(node, "SELECT COUNT(*) FROM audit WHERE action = 'inbox.escalated' AND doc_id = ?", [doc_id])


def test_a_new_directory_version_setting_the_grace_changes_when_escalation_happens(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    meta = notice_meta(CITY_LOCAL, [A1], title="关于报送安全生产检查情况的通知", deadline=due_in(4))
    doc_id = send_document(city, CITY_LOCAL, meta, net.body)["doc_id"]
    inbox_item(county, A1, doc_id)

    # Version 1 sets no 督办 rules: node.toml's 3 working days hold; overdue (noted), not escalated.
    wait_for(lambda: db_value(county, "SELECT COUNT(*) FROM audit WHERE action = 'inbox.overdue' AND doc_id = ?",
                              [doc_id]) == 1, 30, what="the overdue row noted by the sweep")
    time.sleep(2)  # several more sweeps
    item = county.clerk(A1).get(f"/api/v1/inbox/{doc_id}")
    assert item["overdue"] is True and item["escalated_to"] is None
    assert escalations(county, doc_id) == 0 and items(city, CITY) == []

    # Version 2: the network's grace is 0 working days. The running node escalates at its next sweeps.
    v2 = signed_directory(net, 2, TREE, UNITS, supervision={"grace_working_days": 0})
    write_public_file(county.directory / "directory.json", v2)
    write_public_file(city.directory / "directory.json", v2)
    [duban] = wait_for(lambda: items(city, CITY), 60, what="the 督办 at the supervising unit")
    assert (duban["doc_id"], duban["unit"], duban["status"]) == (doc_id, A1, "open")
    assert county.clerk(A1).get(f"/api/v1/inbox/{doc_id}")["escalated_to"] == CITY
    assert escalations(county, doc_id) == 1
