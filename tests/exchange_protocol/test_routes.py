"""Routes through the directory's tree and its direct links (exchange_protocol.routes)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_protocol.routes import RouteTable
from tests.exchange_protocol.directory_support import directory

# city ─┬─ county-a ─┬─ town-a1 ── village-a1x
#       │            └─ town-a2
#       └─ county-b ─── town-b1
TREE = {"city": None, "county-a": "city", "county-b": "city", "town-a1": "county-a", "town-a2": "county-a",
        "town-b1": "county-b", "village-a1x": "town-a1"}


def walk(parents, links, origin: str, destination: str) -> list[str]:
    """The hops an envelope takes when every node forwards along its own table."""
    hops, here = [], origin
    while here != destination:
        here = RouteTable(parents, links, here).next_hop(destination)
        hops.append(here)
        assert len(hops) <= len(parents), "a loop"
    return hops


def test_up_to_the_common_ancestor_then_down():
    assert walk(TREE, (), "village-a1x", "town-b1") == ["town-a1", "county-a", "city", "county-b", "town-b1"]
    assert walk(TREE, (), "town-a2", "village-a1x") == ["county-a", "town-a1", "village-a1x"]
    assert walk(TREE, (), "city", "village-a1x") == ["county-a", "town-a1", "village-a1x"]


def test_a_direct_link_is_taken_where_it_shortens_the_route():
    links = [("county-a", "county-b")]
    assert walk(TREE, links, "town-a1", "town-b1") == ["county-a", "county-b", "town-b1"]
    assert walk(TREE, links, "county-a", "city") == ["city"]  # the tree edge, not a detour


def test_a_node_talks_only_to_its_parent_children_and_links():
    table = RouteTable(TREE, [("town-a2", "town-b1")], "town-a2")
    assert table.neighbours() == ("county-a", "town-b1")
    assert RouteTable(TREE, (), "city").neighbours() == ("county-a", "county-b")


def test_path_lists_every_hop_and_unknown_nodes_have_no_route():
    table = RouteTable(TREE, (), "town-b1")
    assert table.path("village-a1x") == ("county-b", "city", "county-a", "town-a1", "village-a1x")
    assert table.next_hop("nowhere") is None and table.path("nowhere") == ()
    assert table.next_hop("town-b1") is None  # itself
    outsider = RouteTable(TREE, (), "not-listed")
    assert not outsider.listed and outsider.next_hop("city") is None


def test_built_from_a_signed_directory():
    table = RouteTable.of(directory(), "b")
    assert table.next_hop("a") == "a" and table.next_hop("c") == "c"  # b–c is a direct link there
    assert RouteTable.of(directory(links=()), "b").path("c") == ("a", "c")


@st.composite
def trees(draw):
    n = draw(st.integers(min_value=2, max_value=25))
    nodes = [f"n{i}" for i in range(n)]
    parents = {nodes[0]: None}
    for i in range(1, n):
        parents[nodes[i]] = nodes[draw(st.integers(min_value=0, max_value=i - 1))]
    pairs = [p for p in itertools.combinations(nodes, 2)]
    links = draw(st.lists(st.sampled_from(pairs), max_size=4, unique=True))
    return parents, links


@settings(max_examples=60, deadline=None)
@given(trees())
def test_every_hop_gets_closer_so_no_route_loops(tree):
    parents, links = tree
    tables = {node: RouteTable(parents, links, node) for node in parents}
    for origin, destination in itertools.permutations(parents, 2):
        shortest = len(tables[origin].path(destination))
        assert shortest >= 1
        assert len(walk(parents, links, origin, destination)) == shortest
        assert tables[origin].next_hop(destination) in tables[origin].neighbours()


@pytest.mark.parametrize("me", list(TREE))
def test_every_node_reaches_every_other(me):
    table = RouteTable(TREE, (), me)
    assert {table.path(d)[-1] for d in TREE if d != me} == set(TREE) - {me}
