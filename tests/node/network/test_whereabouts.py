"""``gwx track`` says where a document waits when it is not delivered yet: real processes, real TLS.

The relay tree of test_relay (city → county → township, one signed directory, no static peers).
With the township offline the city's tracking follows the envelope: handed to the county, waiting
there for the township, which the county cannot reach since a given time. When the township
returns, the document is delivered and the where-line is gone. The peer route that answers these
questions refuses malformed input with typed errors and tells nodes off the route nothing.
"""

from __future__ import annotations

import datetime as dt

import pytest

from node.localnet import send_document, wait_for
from pki.unit_code import make_unit_code
from tests.node.network.network_support import (
    A1,
    CITY,
    UNIT_NAMES,
    RawPeer,
    db_rows,
    db_value,
    directory_network,
    inbox_item,
    notice_meta,
    tls_context_of,
    track,
    wait_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOWN = make_unit_code("11371302MB0000301")  # 兰山区某镇人民政府, on the township node
UNIT_NAMES.setdefault(TOWN, "兰山区某镇人民政府")
TREE = [("city", "city", None), ("county-a", "county", "city"), ("town-a", "township", "county-a")]
UNITS = [{"code": CITY, "name": UNIT_NAMES[CITY], "level": "city", "node": "city"},
         {"code": A1, "name": UNIT_NAMES[A1], "level": "county", "node": "county-a"},
         {"code": TOWN, "name": UNIT_NAMES[TOWN], "level": "township", "node": "town-a", "parent": A1}]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    hosted = {"city": [{"code": CITY, "name": UNIT_NAMES[CITY]}], "county-a": [{"code": A1, "name": UNIT_NAMES[A1]}],
              "town-a": [{"code": TOWN, "name": UNIT_NAMES[TOWN]}]}
    with directory_network(tmp_path_factory.mktemp("whereabouts"), hosted, TREE, UNITS) as net:
        yield net


def where_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("去向")]


def city_message(city, doc_id: str) -> str:
    return db_rows(city, "SELECT message_id FROM outgoing WHERE doc_id = ? AND type = 'document'", [doc_id])[0][0]


def test_track_shows_the_document_waiting_at_the_county_while_the_township_is_offline(net):
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    net.stop(town)
    try:
        doc_id = send_document(city, CITY, notice_meta(CITY, [TOWN]), net.body)["doc_id"]
        wait_status(city, CITY, doc_id, {TOWN: "sent"})  # the county has it in custody
        wait_for(lambda: db_value(county, "SELECT state FROM peers WHERE node_id = 'town-a'") in ("backing-off", "dead"),
                 30, what="the county backing off the township")
        since = db_value(county, "SELECT since FROM peers WHERE node_id = 'town-a'")

        tracking = city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")
        where = tracking["recipients"][0]["where"]
        assert where["message_id"] == city_message(city, doc_id)
        stops = where["stops"]
        assert [(s["node"], s["state"], s["next_hop"]) for s in stops] == [
            ("city", "handed-on", "county-a"), ("county-a", "waiting", "town-a")], stops
        assert stops[1]["next_hop_state"]["state"] in ("backing-off", "dead")
        assert stops[1]["attempts"] >= 1 and stops[1]["error"]["code"] == "PEER_UNREACHABLE"
        assert dt.datetime.fromisoformat(stops[1]["next_hop_state"]["since"]) == dt.datetime.fromisoformat(since)

        lines = where_lines(track(city, CITY, doc_id))
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"去向 {TOWN}：在county-a等待转交 town-a"), lines
        shown = dt.datetime.fromisoformat(since).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        assert f"town-a 自 {shown} 起无法连接" in lines[0], lines
    finally:
        net.start(town)
    inbox_item(town, TOWN, doc_id)
    tracking = wait_status(city, CITY, doc_id, {TOWN: "delivered"})
    assert tracking["recipients"][0]["where"] is None
    assert where_lines(track(city, CITY, doc_id)) == []


def test_a_document_for_an_offline_neighbour_is_shown_waiting_at_the_origin(net):
    """The county offline, never reached before for a document of its own (the first test sealed for
    the township from the directory's certificates): the document waits at the city as a draft, and
    the line says so — this node, the county unreachable since … — instead of naming a relay."""
    city, county = net.nodes["city"], net.nodes["county-a"]
    net.stop(county)
    try:
        doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
        wait_for(lambda: db_value(city, "SELECT state FROM peers WHERE node_id = 'county-a'") in ("backing-off", "dead"),
                 30, what="the city backing off the county")
        where = city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")["recipients"][0]["where"]
        assert [(s["node"], s["state"], s["next_hop"]) for s in where["stops"]] == [("city", "drafted", "county-a")]
        assert where["line"].startswith("在本节点等待封装：尚未取得 county-a 的加密证书"), where
        assert "county-a 自" in where["line"] and "起无法连接" in where["line"], where
    finally:
        net.start(county)
    wait_status(city, CITY, doc_id, {A1: "delivered"})


def test_the_peer_route_refuses_bad_input_and_nodes_off_the_route(net):
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [TOWN]), net.body)["doc_id"]
    wait_status(city, CITY, doc_id, {TOWN: "delivered"})
    message_id = city_message(city, doc_id)

    as_city = RawPeer(county, tls_context_of(city))
    status, answer, raw = as_city.request("GET", f"/peer/v1/messages/{message_id}/whereabouts?depth=2")
    assert status == 200, raw
    assert [(s["node"], s["state"]) for s in answer["stops"]] == [("county-a", "handed-on"), ("town-a", "delivered")]
    assert set(answer) == {"message_id", "stops"}  # routing facts only: no title, no unit, no content

    status, answer, raw = as_city.request("GET", "/peer/v1/messages/not-an-id/whereabouts")
    assert (status, answer["error"]["code"]) == (400, "API_BAD_MESSAGE_ID"), raw
    status, answer, raw = as_city.request("GET", f"/peer/v1/messages/{message_id}/whereabouts?depth=99")
    assert (status, answer["error"]["code"]) == (400, "API_BAD_PARAMETER"), raw
    unknown = message_id[:-4] + ("0000" if not message_id.endswith("0000") else "0001")
    status, answer, raw = as_city.request("GET", f"/peer/v1/messages/{unknown}/whereabouts")
    assert (status, answer["error"]["code"]) == (404, "API_NOT_FOUND"), raw
    # The township is a node of the network but not between the county and the message's origin:
    # it learns nothing, not even that the county holds such a message.
    status, answer, raw = RawPeer(county, tls_context_of(town)).request(
        "GET", f"/peer/v1/messages/{message_id}/whereabouts")
    assert (status, answer["error"]["code"]) == (404, "API_NOT_FOUND"), raw


def test_a_relay_that_cannot_be_asked_is_an_unknown_stop_not_an_error(net):
    """The county took the document and went down before the township came back: the city's tracking
    still answers, promptly, with what it knows and why it knows no more."""
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    net.stop(town)
    try:
        doc_id = send_document(city, CITY, notice_meta(CITY, [TOWN]), net.body)["doc_id"]
        wait_status(city, CITY, doc_id, {TOWN: "sent"})
        net.stop(county)
        try:
            started = dt.datetime.now(dt.UTC)
            where = city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")["recipients"][0]["where"]
            assert (dt.datetime.now(dt.UTC) - started).total_seconds() < 10
            assert [(s["node"], s["state"]) for s in where["stops"]] == [("city", "handed-on"), ("county-a", "unknown")]
            assert where["stops"][1]["error"]["code"] == "PEER_UNREACHABLE"
            assert where["line"].startswith("已由本节点交给 county-a，此后去向不明（无法询问 county-a"), where
        finally:
            net.start(county)
    finally:
        net.start(town)
    wait_status(city, CITY, doc_id, {TOWN: "delivered"})
