"""Relays that store and forward what they cannot read: city → county → township, real processes.

No node has a static peer: each holds the same signed directory (city at the root, the county under
it, the township under the county) and reaches only its parent and children. A 通知 from the city
to a township unit goes through the county, which keeps it durably, signs a custody receipt and
forwards it; the township's delivery notice and its 签收 come back the same way. The county's disk
never holds the document in clear.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_seal import seal_envelope
from exchange_protocol.notices import Notice
from node.federation.routing import RECHECK_SECONDS
from node.localnet import notice_pdf, send_document, wait_for
from pki.keystore import write_public_file
from pki.unit_code import make_unit_code
from tests.node.network.network_support import (
    A1,
    CITY,
    UNIT_NAMES,
    ByProfile,
    RawPeer,
    db_rows,
    db_value,
    directory_network,
    every_profile,
    forge_envelope,
    inbox_item,
    node_recipient,
    node_sender,
    notice_meta,
    signed_directory,
    tls_context_of,
    verify_audit_chain,
    wait_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOWN = make_unit_code("11371302MB0000101")  # 兰山区某街道办事处, on the township node
GHOST = make_unit_code("11371302MB0000102")  # the directory says the township hosts it; the township does not
UNIT_NAMES.setdefault(TOWN, "兰山街道办事处")
UNIT_NAMES.setdefault(GHOST, "兰山区某村委会")
TREE = [("city", "city", None), ("county-a", "county", "city"), ("town-a", "township", "county-a")]
UNITS = [{"code": CITY, "name": UNIT_NAMES[CITY], "level": "city", "node": "city"},
         {"code": A1, "name": UNIT_NAMES[A1], "level": "county", "node": "county-a"},
         {"code": TOWN, "name": UNIT_NAMES[TOWN], "level": "township", "node": "town-a", "parent": A1},
         {"code": GHOST, "name": UNIT_NAMES[GHOST], "level": "village", "node": "town-a", "parent": TOWN}]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    hosted = {"city": [{"code": CITY, "name": UNIT_NAMES[CITY]}], "county-a": [{"code": A1, "name": UNIT_NAMES[A1]}],
              "town-a": [{"code": TOWN, "name": UNIT_NAMES[TOWN]}]}
    with contextlib.ExitStack() as stack:
        yield ByProfile(lambda profile: stack.enter_context(directory_network(
            tmp_path_factory.mktemp(f"relay-{profile}"), hosted, TREE, UNITS, profile=profile)))


def relayed(node, message_id: str) -> list[tuple]:
    return db_rows(node, "SELECT relayed_to, state FROM received WHERE message_id = ?", [message_id])


def outgoing_message(node, doc_id: str) -> str:
    return db_rows(node, "SELECT message_id FROM outgoing WHERE doc_id = ? AND type = 'document'", [doc_id])[0][0]


@every_profile
def test_a_document_reaches_a_township_through_its_county_and_the_sign_for_comes_back(net):
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    meta = notice_meta(CITY, [TOWN], title="关于做好冬季森林防火工作的通知")
    doc_id = send_document(city, CITY, meta, net.body)["doc_id"]

    item = inbox_item(town, TOWN, doc_id)
    assert item["from_unit"] == CITY and item["status"] == "pending"
    assert item["from_unit_name"] == UNIT_NAMES[CITY]  # the sender by name, as the directory names it
    message_id = outgoing_message(city, doc_id)
    assert relayed(county, message_id) == [("town-a", "done")]  # the county kept it for the township
    # The city handed it to the county (custody), never to the township directly …
    assert db_rows(city, "SELECT destination FROM queue WHERE message_id = ?", [message_id]) == [("county-a",)]
    # … and learns of the delivery end to end, from the township's own notice, through the county.
    wait_status(city, CITY, doc_id, {TOWN: "delivered"})

    town.clerk(TOWN).post(f"/api/v1/inbox/{doc_id}/sign-for", {})
    tracking = wait_status(city, CITY, doc_id, {TOWN: "signed_for"})
    assert tracking["recipients"][0]["who"]
    # The county relayed the notices back: the transport-ack and the 签收 receipt.
    back = db_rows(county, "SELECT type FROM received WHERE origin_node = 'town-a' AND relayed_to = 'city'")
    assert sorted(t for (t,) in back) == ["receipt", "transport-ack"]


def test_a_pdf_sealed_with_sm2_crosses_a_guomi_network_like_an_ofd(networks, tmp_path):
    """Main's decision for a 国密 network: a PDF 正文 is sealed with the unit's SM2 key (PAdES with SM3)
    as an OFD is — through the relay to the township, verified there, signed for."""
    net = networks("sm")
    city, town = net.nodes["city"], net.nodes["town-a"]
    body = tmp_path / "body.pdf"
    body.write_bytes(notice_pdf("关于做好冬季防汛物资储备的通知"))
    doc_id = send_document(city, CITY, notice_meta(CITY, [TOWN]), body)["doc_id"]
    assert inbox_item(town, TOWN, doc_id)["verified"] is True
    town.clerk(TOWN).post(f"/api/v1/inbox/{doc_id}/sign-for", {})
    wait_status(city, CITY, doc_id, {TOWN: "signed_for"})


def test_the_relay_never_holds_the_document_in_clear(net):
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    title = "关于开展安全隐患排查整治的通知"
    doc_id = send_document(city, CITY, notice_meta(CITY, [TOWN], title=title), net.body)["doc_id"]
    inbox_item(town, TOWN, doc_id)
    body = net.body.read_bytes()
    needles = [title.encode(), body[len(body) // 2:len(body) // 2 + 64], doc_id.encode()]
    seen = []
    for path in county.directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            seen += [n for n in needles if n in data]
    assert seen == [], "the relay's disk holds the document in clear"
    # The township holds it in clear, of course: the needles are real.
    town_files = b"".join(p.read_bytes() for p in (town.directory / "data").rglob("*") if p.is_file())
    assert needles[0] in town_files or needles[1] in town_files


def test_a_relay_refuses_junk_at_the_first_hop(net):
    """An envelope for the township whose origin signature does not verify, or whose origin is not
    the node handing it over, never travels past the county, though the county cannot read it."""
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    message_id, data = forge_envelope(city, town, from_unit=CITY, to_units=[TOWN])
    # One header (K = 1): its lengths are the table's first entry, its bytes follow the table.
    header_len, signature_len = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    broken = bytearray(data)
    broken[24 + header_len + signature_len - 1] ^= 0x01  # the last byte of the signature value
    status, answer, raw = RawPeer(county, tls_context_of(city)).post_envelopes(bytes(broken))
    assert answer["results"][0]["error"]["code"] == "ENV_BAD_SIGNATURE", raw
    # The genuine bytes, but handed over by the township as if it were the origin (no hop counted).
    status, answer, raw = RawPeer(county, tls_context_of(town)).post_envelopes(data)
    assert answer["results"][0]["error"]["code"] == "ENV_ORIGIN_MISMATCH", raw
    assert relayed(county, message_id) == []
    assert town.running and county.running


@every_profile  # the restart of a 国密 network's node
def test_a_child_offline_is_waited_for_and_drains_when_it_returns(net):
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    net.stop(town)
    try:
        doc_ids = [send_document(city, CITY, notice_meta(CITY, [TOWN]), net.body)["doc_id"] for _ in range(3)]
        # The county took custody (the city's rows say 已发送) and keeps trying the township.
        for doc_id in doc_ids:
            wait_status(city, CITY, doc_id, {TOWN: "sent"})
        wait_for(lambda: db_value(county, "SELECT COUNT(*) FROM queue WHERE destination = 'town-a'"
                                          " AND state = 'deferred'") >= 1, 30, what="the county retrying the township")
    finally:
        net.start(town)
    for doc_id in doc_ids:
        inbox_item(town, TOWN, doc_id)
        wait_status(city, CITY, doc_id, {TOWN: "delivered"})


def test_a_refusal_beyond_the_relay_bounces_back_along_the_tree(net):
    """The township refuses for good a document for a unit it does not host (the directory says it
    does): the county gives up and bounces it to the city, whose row turns failed with the reason."""
    city = net.nodes["city"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [GHOST]), net.body)["doc_id"]
    tracking = wait_status(city, CITY, doc_id, {GHOST: "failed"})
    reason = tracking["recipients"][0]["reason"]
    assert "ENV_UNIT_NOT_HOSTED" in reason and "county-a" in reason, reason


def test_the_hop_limit_stops_an_envelope_at_the_relay(net):
    """An envelope that has used up its hops is refused by the relay, never forwarded."""
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    now = dt.datetime.now(dt.UTC)
    draft = HeaderDraft.new(MessageType.URGE, "city", "town-a", CITY, [TOWN], now, dt.timedelta(days=1),
                            in_reply_to=HeaderDraft.new(MessageType.DOCUMENT, "city", "town-a", CITY, [TOWN], now,
                                                        dt.timedelta(days=1)).message_id, max_hops=1)
    payload = Notice(MessageType.URGE, "forged-doc-0001", (TOWN,), now).encode()
    sealed = seal_envelope(draft, payload, node_sender(city), node_recipient(town)).data
    used_up = sealed[:5] + bytes([1]) + sealed[6:]  # the frame says: one relay passed already
    status, answer, raw = RawPeer(county, tls_context_of(city)).post_envelopes(used_up)
    assert answer["results"][0]["error"]["code"] == "ENV_TOO_MANY_HOPS", raw
    assert relayed(county, draft.message_id) == []
    # With the hop still unused the same envelope is taken in custody.
    status, answer, raw = RawPeer(county, tls_context_of(city)).post_envelopes(sealed)
    assert "receipt" in answer["results"][0], raw


def test_kill_9_of_the_relay_mid_stream_loses_and_duplicates_nothing(net):
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    before = db_value(county, "SELECT COUNT(*) FROM received WHERE relayed_to = 'town-a'")
    doc_ids = []
    for i in range(24):
        doc_ids.append(send_document(city, CITY, notice_meta(CITY, [TOWN]), net.body)["doc_id"])
        if i == 5:
            wait_for(lambda: db_value(county, "SELECT COUNT(*) FROM received WHERE relayed_to = 'town-a'") > before,
                     30, interval=0.02, what="the county relaying")
            net.kill(county)  # SIGKILL, in the middle of the city's stream
    net.start(county)
    try:
        for doc_id in doc_ids:
            wait_status(city, CITY, doc_id, {TOWN: "delivered"}, timeout=60)
    except TimeoutError:
        print("CITY", city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}"))
        print("CITYQ", db_rows(city, "SELECT message_id, destination, state, last_error_code, last_error_message FROM queue WHERE state != 'sent'"))
        print("COUNTYQ", db_rows(county, "SELECT message_id, destination, state, last_error_code, last_error_message FROM queue WHERE state != 'sent'"))
        print("TOWNR", db_rows(town, "SELECT message_id, state, error_code, error_message FROM received WHERE state != 'done'"))
        print(net.log_tail(county, 30))
        print(net.log_tail(city, 30))
        raise
    rows = db_rows(town, "SELECT doc_id, COUNT(*) FROM inbox WHERE unit_code = ? GROUP BY doc_id", [TOWN])
    held = {doc_id: n for doc_id, n in rows}
    assert all(held.get(doc_id) == 1 for doc_id in doc_ids), held
    verify_audit_chain(county)


def test_a_loop_between_directories_that_disagree_is_given_up_on(net):
    """The county holds a hand-made directory in which the township hangs under the city, the city one
    in which it hangs under the county: each would hand the envelope to the other. The county
    refuses it (ROUTE_LOOP) and the city's row turns failed with that reason."""
    city, county = net.nodes["city"], net.nodes["county-a"]
    held = (county.directory / "directory.json").read_bytes()
    crooked = [TREE[0], TREE[1], ("town-a", "township", "city")]
    write_public_file(county.directory / "directory.json", signed_directory(net, 2, crooked, UNITS))
    time.sleep(RECHECK_SECONDS + 0.3)  # a file another process writes is looked at within a second
    try:
        doc_id = send_document(city, CITY, notice_meta(CITY, [TOWN]), net.body)["doc_id"]
        tracking = wait_status(city, CITY, doc_id, {TOWN: "failed"})
        assert "ROUTE_LOOP" in tracking["recipients"][0]["reason"]
    finally:
        write_public_file(county.directory / "directory.json", held)
        time.sleep(RECHECK_SECONDS + 0.3)  # the tests after this one route on the good one again


def test_only_a_neighbour_may_hand_on_what_passed_a_relay(net):
    """The township is not the city's neighbour (its county is between): an envelope that claims to
    have passed a relay, handed to the city by the township, is refused."""
    city, county, town = net.nodes["city"], net.nodes["county-a"], net.nodes["town-a"]
    message_id, data = forge_envelope(county, city, from_unit=A1, to_units=[CITY])
    relayed_once = data[:5] + bytes([1]) + data[6:]
    status, answer, raw = RawPeer(city, tls_context_of(town)).post_envelopes(relayed_once)
    assert answer["results"][0]["error"]["code"] == "ROUTE_NOT_NEIGHBOUR", raw
    assert db_rows(city, "SELECT 1 FROM received WHERE message_id = ?", [message_id]) == []
    # From the county (the city's child) the same bytes are taken.
    status, answer, raw = RawPeer(city, tls_context_of(county)).post_envelopes(relayed_once)
    assert "receipt" in answer["results"][0], raw
