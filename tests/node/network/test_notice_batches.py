"""签收 batched per destination (issue 8 §4), over real processes and real TLS.

city ── county ── town (a township node hosting its government and eleven villages)

The city sends one 通知 to the twelve units of the township. Their 签收 go back along the tree
(through the county, which relays what it cannot read). Whatever waits while the township's line
is busy leaves together: with the county away while the clerks sign, the twelve 签收 leave in at
most two envelopes — the one the queue took first, and one batch of everything written meanwhile
— and every row at the city turns 已签收 with its own 签收人. Counted in queue rows and received
rows on every node, not in time. On an international network and on a 国密 one: each 签收's
statement, verified at the city and kept, names the package by the network's digest (SM3 there).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from node.localnet import send_document
from pki.keystore import write_public_file
from pki.unit_code import make_unit_code
from tests.node.network.network_support import (
    A1,
    CITY,
    FAST_RETRY,
    UNIT_NAMES,
    ByProfile,
    db_value,
    every_profile,
    inbox_item,
    kept_statements,
    new_network,
    notice_meta,
    package_digest_by_openssl,
    recipients_by_unit,
    signed_directory,
    wait_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOWN = make_unit_code("11371302MB0000301")  # 兰山区白沙埠镇人民政府
VILLAGES = [make_unit_code(f"54371302MA{3010 + i:07d}") for i in range(11)]
TOWN_UNITS = [TOWN, *VILLAGES]
NAMES = {**UNIT_NAMES, TOWN: "兰山区白沙埠镇人民政府",
         **{v: f"白沙埠镇第{i + 1}村村民委员会" for i, v in enumerate(VILLAGES)}}
NODES = [("city", "city", None, [CITY]), ("county", "county", "city", [A1]), ("town", "township", "county", TOWN_UNITS)]


def _network(base, profile: str):
    net = new_network(base, profile=profile)
    for node_id, _, _, codes in NODES:
        net.add_node(node_id, [{"code": c, "name": NAMES[c]} for c in codes], retry=FAST_RETRY)
    directory = signed_directory(net, 1, [(n, level, parent) for n, level, parent, _ in NODES],
                                 [{"code": c, "name": NAMES[c], "level": level, "node": n}
                                  for n, level, _, codes in NODES for c in codes])
    for node in net.nodes.values():
        write_public_file(node.directory / "directory.json", directory)
    try:
        net.start_all()
    except BaseException:
        net.stop_all()
        raise
    return net


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        def make(profile: str):
            net = _network(tmp_path_factory.mktemp(f"notice-batches-{profile}"), profile)
            stack.callback(net.stop_all)
            return net
        yield ByProfile(make)


@every_profile
def test_twelve_signatures_written_while_the_line_is_busy_travel_in_two_envelopes(net):
    city, county, town = net.nodes["city"], net.nodes["county"], net.nodes["town"]
    doc_id = send_document(city, CITY, notice_meta(CITY, TOWN_UNITS), net.body)["doc_id"]
    for unit in TOWN_UNITS:
        inbox_item(town, unit, doc_id)
    wait_status(city, CITY, doc_id, {u: "delivered" for u in TOWN_UNITS})  # the transport-ack is home

    net.stop(county)  # the township's only line is down while its clerks sign
    try:
        with ThreadPoolExecutor(len(TOWN_UNITS)) as pool:  # every clerk at once
            signed = list(pool.map(lambda u: town.clerk(u).post(f"/api/v1/inbox/{doc_id}/sign-for", {}),
                                   TOWN_UNITS))
        assert [s["status"] for s in signed] == ["signed_for"] * len(TOWN_UNITS)
    finally:
        net.start(county)

    tracking = wait_status(city, CITY, doc_id, {u: "signed_for" for u in TOWN_UNITS})
    rows = recipients_by_unit(tracking)
    assert {u: rows[u]["who"] for u in TOWN_UNITS} == {u: f"{NAMES[u]}收发员" for u in TOWN_UNITS}

    receipts = "type = 'receipt'"
    left_town = db_value(town, f"SELECT count(*) FROM queue WHERE {receipts}")
    assert 1 <= left_town <= 2, left_town  # twelve notices, at most two envelopes
    assert db_value(town, f"SELECT count(*) FROM outgoing WHERE {receipts}") == left_town  # no id left behind
    assert db_value(county, f"SELECT count(*) FROM received WHERE {receipts} AND relayed_to = 'city'") == left_town
    assert db_value(city, f"SELECT count(*) FROM received WHERE {receipts} AND state = 'done'") == left_town
    assert db_value(city, "SELECT count(*) FROM received WHERE state = 'failed'") == 0

    # Every 签收 came with its unit's statement, verified at the city and kept there: it names the
    # package by the network's digest (SM3 on a 国密 network), the one openssl computes over the bytes
    # the township's clerks received.
    key, digest = package_digest_by_openssl(net, town.clerk(TOWN).get(f"/api/v1/inbox/{doc_id}/package"))
    kept = kept_statements(city, doc_id, "sender")
    assert sorted(kept) == sorted(TOWN_UNITS) and {s[key] for s in kept.values()} == {digest}
