"""Fan-out: one document to units on many nodes is sealed once per next hop, not once per node.

city ─┬─ county-a ─┬─ town-a1
      │            └─ town-a2
      └─ county-b ─── town-b1

The city sends one 通知 to a unit on each of the five other nodes. Its envelope to county-a is one
bundle (one payload encrypted once, a header for county-a, town-a1 and town-a2), its envelope to
county-b another; each county keeps its own header and forwards one frame per township, carrying
the same payload bytes. Every unit gets the document, every 签收 comes back — on an international
network and on a 国密 one (SM4/SM2 bundles, SM2-signed headers and 签收 statements naming the package
by SM3).
"""

from __future__ import annotations

import contextlib

import pytest

from node.localnet import send_document, wait_for
from pki.unit_code import make_unit_code
from tests.node.network.network_support import (
    A1,
    B1,
    CITY,
    UNIT_NAMES,
    ByProfile,
    db_rows,
    directory_network,
    every_profile,
    inbox_item,
    notice_meta,
    wait_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOWNS = {"town-a1": make_unit_code("11371302MB0000201"), "town-a2": make_unit_code("11371302MB0000202"),
         "town-b1": make_unit_code("11371311MB0000201")}
NAMES = {**UNIT_NAMES, TOWNS["town-a1"]: "兰山区枣园镇人民政府", TOWNS["town-a2"]: "兰山区汪沟镇人民政府",
         TOWNS["town-b1"]: "罗庄区册山街道办事处"}
NODES = [("city", "city", None, CITY), ("county-a", "county", "city", A1), ("county-b", "county", "city", B1),
         ("town-a1", "township", "county-a", TOWNS["town-a1"]), ("town-a2", "township", "county-a", TOWNS["town-a2"]),
         ("town-b1", "township", "county-b", TOWNS["town-b1"])]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    hosted = {node_id: [{"code": code, "name": NAMES[code]}] for node_id, _, _, code in NODES}
    # The city's in-flight window (2) is smaller than its bundle to county-a (3 headers): the
    # window cuts the bundle, and its frame goes out twice, answered for every header each time.
    overrides = {"city": {"limits": {"batch_size": 2, "active_window": 2}}}
    tree = [(n, level, parent) for n, level, parent, _ in NODES]
    listed = [{"code": code, "name": NAMES[code], "level": level, "node": n} for n, level, _, code in NODES]
    with contextlib.ExitStack() as stack:
        yield ByProfile(lambda profile: stack.enter_context(directory_network(
            tmp_path_factory.mktemp(f"fanout-{profile}"), hosted, tree, listed, overrides, profile=profile)))


@every_profile
def test_one_document_to_five_nodes_leaves_the_city_once_per_child_link(net):
    city = net.nodes["city"]
    units = [code for n, _, _, code in NODES if n != "city"]
    doc_id = send_document(city, CITY, notice_meta(CITY, units), net.body)["doc_id"]
    for node_id, _, _, code in NODES[1:]:
        inbox_item(net.nodes[node_id], code, doc_id)

    sent = db_rows(city, "SELECT q.destination, q.blob_digest, o.destination FROM queue q JOIN outgoing o"
                         " ON o.message_id = q.message_id WHERE o.doc_id = ? AND o.type = 'document'", [doc_id])
    assert sorted(dest for _, _, dest in sent) == sorted(n for n, *_ in NODES[1:])  # one message per node
    frames = {hop: {blob for h, blob, _ in sent if h == hop} for hop, _, _ in sent}
    assert frames.keys() == {"county-a", "county-b"} and all(len(b) == 1 for b in frames.values()), frames

    county_a = net.nodes["county-a"]
    relayed = db_rows(county_a, "SELECT relayed_to, blob_digest FROM received WHERE relayed_to IS NOT NULL"
                                " AND origin_node = 'city' AND type = 'document'")
    assert sorted(hop for hop, _ in relayed) == ["town-a1", "town-a2"]
    assert len({blob for _, blob in relayed}) == 2  # one frame per township, each with its own header

    # Every row of both bundles gets its receipt at the city, the cut bundle's too.
    wait_for(lambda: db_rows(city, "SELECT DISTINCT q.state FROM queue q JOIN outgoing o ON o.message_id ="
                                   " q.message_id WHERE o.doc_id = ? AND o.type = 'document'", [doc_id]) == [("sent",)],
             30, what="every queue row of the document sent")

    for node_id, _, _, code in NODES[1:]:
        net.nodes[node_id].clerk(code).post(f"/api/v1/inbox/{doc_id}/sign-for", {})
    wait_status(city, CITY, doc_id, {code: "signed_for" for _, _, _, code in NODES[1:]})
