"""bench/network.py's city, smaller: its network builder and its exchange, asserted on behaviour.

A city, one county and two townships (14 units) in two OS processes (:mod:`node.cohost`): real
certificates from a root and a county CA, the signed directory from ``gwx net build``, real TLS
between the nodes. The city government office's 通知 reaches every other unit, each unit's clerk
signs for it with the unit's own token, and every 签收 is back in the sender's tracking.
"""

from __future__ import annotations

import pytest

from bench.network import OFFICE, Shape, build_network, exchange, gc_seconds, hop_counts, plan

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TINY = Shape(counties=1, townships=2, city_units=3, county_units=3, units=14)


def test_every_unit_receives_the_notice_and_every_signature_comes_back(tmp_path):
    city = build_network(tmp_path / "net", TINY, processes=2)
    try:
        gc_before = gc_seconds(city)
        figures = exchange(city, tmp_path, timeout=120, poll=0.2)
        tracking = city.net.nodes["city"].clerk(OFFICE).get(f"/api/v1/outbox/{figures['doc_id']}")
        hosts = {node.node_id: node.process.pid for node in city.net.nodes.values()}
        gc_after = gc_seconds(city)
    finally:
        city.net.stop_all()
    units = {u["code"]: u["name"] for node in plan(TINY) for u in node.units}
    assert len(units) == 14 and len(hosts) == 4
    recipients = set(units) - {OFFICE}
    assert figures["received"] == len(recipients)
    by_unit = {r["unit"]: r for r in tracking["recipients"]}
    assert set(by_unit) == recipients
    assert {r["status"] for r in by_unit.values()} == {"signed_for"}
    assert all(r["who"] == f"{units[code]}收发员" for code, r in by_unit.items())  # each unit's own clerk
    # The city alone in one process, the county and its townships in the other.
    assert len(set(hosts.values())) == 2 and hosts["city"] not in {hosts[n] for n in hosts if n != "city"}
    # The garbage collector's CPU, per process (what the bench reports beside each process's CPU): it grows.
    assert len(gc_before) == len(gc_after) == 2 and all(0 < b <= a for b, a in zip(gc_before, gc_after, strict=True))
    # Direct routing: one envelope carrying the package to every other node, straight from the city.
    assert figures["origin_peer_ids"] == sorted(set(hosts) - {"city"})
    assert figures["origin_bytes"] >= figures["package_bytes"] * (len(hosts) - 1)


def test_along_the_tree_the_city_sends_only_to_its_counties_and_they_relay(tmp_path):
    """--routing tree lists only parent/child links: the townships' units get the 通知 through their
    county, which relays one bundle for all of them, and their 签收 come back the same way."""
    city = build_network(tmp_path / "net", TINY, routing="tree", processes=2)
    try:
        figures = exchange(city, tmp_path, timeout=120, poll=0.2)
        hops = hop_counts(city)
    finally:
        city.net.stop_all()
    assert figures["received"] == figures["signed_back"] == figures["recipients"] == 13
    # Hop by hop: each township's transport-ack and 签收 go to its county, which takes every one of
    # them in custody for the city (up), as it took the city's bundle for each township (down).
    townships, county = hops["township"], hops["county"]
    assert townships["nodes"] == 2 and townships["envelopes_sent"] >= 4 and townships["requests"] >= 2
    assert county["relayed_up"] == townships["envelopes_sent"] and county["relayed_down"] == 2
    # The city's one bundle: a header each for the county and its two townships.
    assert hops["city"]["envelopes_sent"] == 3 and hops["city"]["requests"] >= 1
    assert figures["origin_peer_ids"] == ["county-wuling"]
    # Fan-out: one bundle for everything below the county, the package on the origin's uplink once
    # per child link (issue 8's aim: at most 1.2 × package × child links).
    assert figures["origin_bytes"] <= 1.2 * figures["package_bytes"] * 1


def test_signing_after_delivery_no_clerk_signs_before_every_unit_has_it(tmp_path):
    """--sign-after-delivery: delivery alone, measured without the 签收 of the first nodes reached
    sharing the machine; every 签收 still comes back."""
    city = build_network(tmp_path / "net", TINY, routing="tree", processes=2)
    try:
        called: list[str] = []  # --py-spy-signing starts its profilers at the first, stops them at the second
        figures = exchange(city, tmp_path, timeout=120, poll=0.2, after_delivery=True,
                           on_signing=lambda: called.append("signing"), on_end=lambda: called.append("end"))
    finally:
        city.net.stop_all()
    assert figures["received"] == figures["signed_back"] == figures["recipients"] == 13
    assert figures["first_signed_s"] > figures["delivered_s"]
    assert called == ["signing", "end"]  # once each, however many nodes' clerks saw every node have it
    # The event loop's thread's share of each process's CPU, at both points (the rest: SQLite's and
    # the workers' threads).
    for main, total in ((figures["main_cpu_s_at_every_node"], figures["cpu_s_at_every_node"]),
                        (figures["main_cpu_s_at_end"], figures["cpu_s_at_end"])):
        assert all(0 < m <= t for m, t in zip(main, total, strict=True))
    # Each process's CPU when the last node had it (before any 签收): the split between the two phases.
    assert len(figures["cpu_s_at_every_node"]) == 2 and all(cpu > 0 for cpu in figures["cpu_s_at_every_node"])
    # ... and at the end, taken before the bench reads any node's /metrics (not the exchange's CPU).
    assert all(end >= at for end, at in zip(figures["cpu_s_at_end"], figures["cpu_s_at_every_node"], strict=True))
