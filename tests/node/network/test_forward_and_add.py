"""补发 and 转发 across real node processes.

补发: the city adds units to a document it already sent — on another node and on its own — and the
very same sealed package reaches them, verifies, appears in the city's track like the first
recipients and follows their 签收. 转发: 兰山区 forwards a document it received from the city, with a
cover 通知, to a unit on another node and one on its own: each gets the cover and the original
package byte for byte (the city's seal intact), sees who forwarded it under which cover, and the
forwarder's track of the cover follows each copy to its 签收, and the city's track of its document
shows the forward (a 转发告知 from 兰山区's node). Bad requests are refused with typed
codes and change nothing. 补发 and 转发 run on a 国密 network too (the package and the cover sealed
with SM2 on an OFD body, the envelopes SM2/SM4, the forwarded copy's 签收 statement by SM3)."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from exchange_protocol.envelope import MessageType
from exchange_protocol.notices import Notice
from node.cli.api_client import MultipartStream, RemoteError
from node.localnet import send_document, wait_for
from pki.unit_code import make_unit_code
from tests.node.network.network_support import (
    A1,
    A2,
    B1,
    CITY,
    CITY_LOCAL,
    ByProfile,
    RawPeer,
    db_rows,
    db_value,
    every_profile,
    forge_envelope,
    gwx,
    inbox_item,
    notice_meta,
    start_network,
    tls_context_of,
    token_file,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    made = ByProfile(lambda profile: start_network(
        tmp_path_factory.mktemp(f"add-recipients-{profile}"),
        {"city": ([CITY, CITY_LOCAL], {}), "county-a": ([A1, A2], {}), "county-b": ([B1], {})}, profile=profile))
    yield made
    made.stop_all()


def package(node, unit: str, doc_id: str) -> bytes:
    out = io.BytesIO()
    node.clerk(unit).download(f"/api/v1/inbox/{doc_id}/package", out)
    return out.getvalue()


def statuses(node, unit: str, doc_id: str) -> dict[str, tuple[str, str]]:
    return {r["unit"]: (r["role"], r["status"]) for r in node.clerk(unit).get(f"/api/v1/outbox/{doc_id}")["recipients"]}


@every_profile
def test_a_unit_added_later_gets_the_same_sealed_package_and_shows_in_the_track(net):
    city, county_a, county_b = net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    inbox_item(county_a, A1, doc_id)
    sent = package(city, CITY, doc_id)

    tracking = city.clerk(CITY).post(f"/api/v1/outbox/{doc_id}/recipients", {"units": [B1]})
    assert {r["unit"] for r in tracking["recipients"]} == {A1, B1}
    item = inbox_item(county_b, B1, doc_id)
    assert (item["role"], item["from_unit"], item["verified"]) == ("抄送", CITY, True)
    assert package(county_b, B1, doc_id) == package(county_a, A1, doc_id) == sent  # unchanged, seal and all

    # 补发 from the command line, to a unit on the sender's own node.
    out = gwx("add-recipient", doc_id, "--unit", CITY_LOCAL, "--node", city.ready["local_url"],
              "--token-file", str(token_file(city, f"clerk-{CITY}")))
    assert out.returncode == 0, out.stderr
    assert CITY_LOCAL in out.stdout
    assert package(city, CITY_LOCAL, doc_id) == sent

    wait_for(lambda: statuses(city, CITY, doc_id) == {A1: ("主送", "delivered"), B1: ("抄送", "delivered"),
                                                      CITY_LOCAL: ("抄送", "delivered")}, 60, what="all delivered")
    county_b.clerk(B1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    wait_for(lambda: statuses(city, CITY, doc_id)[B1] == ("抄送", "signed_for"), 60, what="B1's 签收 back")


@pytest.mark.parametrize("who, doc, body, status, code", [
    (CITY, "no-such-document", {"units": [B1]}, 404, "API_NOT_FOUND"),
    (CITY_LOCAL, None, {"units": [B1]}, 404, "API_NOT_FOUND"),  # another unit's document
    (CITY, None, {"units": [A1]}, 409, "STORE_DUPLICATE"),  # already a recipient
    (CITY, None, {"units": [make_unit_code("11371399MB0000009")]}, 400, "ROUTE_UNKNOWN_UNIT"),
    (CITY, None, {}, 400, "API_BAD_FIELD"),
    (CITY, None, {"units": []}, 400, "API_BAD_FIELD"),
    (CITY, None, {"units": [B1, B1]}, 400, "API_BAD_FIELD"),
    (CITY, None, {"units": ["not-a-unit"]}, 400, "API_BAD_FIELD"),
    (CITY, None, {"units": [B1], "role": "主送"}, 400, "API_UNKNOWN_FIELD"),
])
def test_bad_add_recipient_requests_are_refused_and_change_nothing(net, who, doc, body, status, code):
    city = net.nodes["city"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    with pytest.raises(RemoteError) as refused:
        city.clerk(who).post(f"/api/v1/outbox/{doc or doc_id}/recipients", body)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert set(statuses(city, CITY, doc_id)) == {A1}


def forward(node, unit: str, doc_id: str, cover: dict, body) -> dict:
    stream = MultipartStream([("meta", json.dumps(cover, ensure_ascii=False).encode(), "application/json")],
                             [("body", body, body.name, "application/pdf")])
    return node.client(f"clerk-{unit}").post_multipart(f"/api/v1/inbox/{doc_id}/forward", stream)


@every_profile
def test_a_received_document_is_forwarded_unchanged_with_a_cover_and_both_sides_see_the_chain(net, tmp_path):
    city, county_a, county_b = net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1], title="关于做好森林防火工作的通知"), net.body)["doc_id"]
    inbox_item(county_a, A1, doc_id)
    county_a.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")  # a unit forwards what it has signed for
    original = package(city, CITY, doc_id)

    cover_meta = notice_meta(A1, [B1, A2], title="关于转发《关于做好森林防火工作的通知》的通知")
    meta_file = tmp_path / "cover.json"
    meta_file.write_text(json.dumps(cover_meta, ensure_ascii=False), "utf-8")
    out = gwx("forward", doc_id, "--meta", str(meta_file), "--body", str(net.body), "--json",
              "--node", county_a.ready["local_url"], "--token-file", str(token_file(county_a, f"clerk-{A1}")))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    cover_id = result["doc_id"]
    assert result["forwarded"]["doc_id"] == doc_id and {r["unit"] for r in result["forwarded"]["recipients"]} == {
        B1, A2}

    for node, unit in ((county_b, B1), (county_a, A2)):
        cover = inbox_item(node, unit, cover_id)
        assert (cover["from_unit"], cover["title"]) == (A1, cover_meta["title"])
        forwarded = inbox_item(node, unit, doc_id)
        assert (forwarded["from_unit"], forwarded["role"], forwarded["verified"]) == (A1, "抄送", True)
        shown = wait_for(lambda n=node, u=unit: (lambda d: d if d.get("cover_doc_id") else None)(
            n.clerk(u).get(f"/api/v1/inbox/{doc_id}")), 30, what="the cover linked")
        assert (shown["forwarded_by"], shown["cover_doc_id"]) == (A1, cover_id)
        assert shown["metadata"]["issuers"] == [CITY]  # the city's document, its seal checked at the receiver
        assert package(node, unit, doc_id) == original

    def copies() -> dict:
        return {r["unit"]: r["status"] for r in county_a.clerk(A1).get(f"/api/v1/outbox/{cover_id}")["forwarded"]
                ["recipients"]}
    wait_for(lambda: copies() == {B1: "delivered", A2: "delivered"}, 60, what="both copies delivered")
    county_b.clerk(B1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    wait_for(lambda: copies()[B1] == "signed_for", 60, what="B1's 签收 of the forwarded document back at 兰山区")
    # B1's seal-signed statement came back with it, was checked against the package A1 forwarded, and is kept.
    held = db_rows(county_a, "SELECT unit, side FROM notice_evidence WHERE doc_id = ?", [doc_id])
    assert {(B1, "sender"), (A1, "receiver")} <= {tuple(r) for r in held}
    # The forwarded copy's 签收 says in the forwarder's audit trail which statement it rests on.
    [(kept,)] = db_rows(county_a, "SELECT sha256 FROM notice_evidence WHERE doc_id = ? AND unit = ? AND side = "
                                  "'sender'", [doc_id, B1])
    audited = db_rows(county_a, "SELECT json_extract(details, '$.evidence') FROM audit WHERE doc_id = ? AND "
                                "action = 'forward.signed_for'", [doc_id])
    assert [tuple(r) for r in audited] == [(kept,)]
    track = county_a.clerk(A1).get(f"/api/v1/outbox/{cover_id}")
    assert track["forwarded"]["from_unit"] == CITY and track["forwarded"]["title"] == "关于做好森林防火工作的通知"
    assert {r["unit"]: r["status"] for r in track["recipients"]} == {B1: "delivered", A2: "delivered"}
    # The city's own track of its document is untouched by the forward: A1 signed for it.
    assert statuses(city, CITY, doc_id) == {A1: ("主送", "signed_for")}
    # ... and shows the forward: county-a told the city's node (转发告知), in the API, gwx track and the console.
    [told] = wait_for(lambda: city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")["forwarded_on"], 60,
                      what="the forward told to the issuer")
    assert (told["unit"], told["cover_doc_id"], sorted(told["units"]), told["count"], told["node"]) == (
        A1, cover_id, sorted([B1, A2]), 2, "county-a")
    shown = gwx("track", doc_id, "--node", city.ready["local_url"], "--token-file", str(token_file(city, f"clerk-{CITY}")))
    assert f"转发 by {told['unit_name']} ({A1}) to 2 units under cover {cover_id}" in shown.stdout, shown.stdout
    assert db_rows(city, "SELECT COUNT(*) FROM audit WHERE action = 'outbox.forwarded_on' AND doc_id = ?",
                   [doc_id]) == [(1,)]


@pytest.mark.parametrize("who, doc, cover, status, code", [
    (A1, "no-such-document", None, 404, "API_NOT_FOUND"),
    (A2, None, None, 404, "API_NOT_FOUND"),  # not received by A2: another unit's document
    (A1, None, {"issuers": [B1]}, 403, "API_FORBIDDEN"),  # a cover in another unit's name
    (A1, None, {"to": [A1]}, 400, "API_BAD_REQUEST"),  # forwarded to itself
    (A1, None, {"to": [make_unit_code("11371399MB0000009")]}, 400, "ROUTE_UNKNOWN_UNIT"),
    (A1, None, {"kind": "便条"}, 400, "DOC_UNKNOWN_KIND"),
])
def test_bad_forward_requests_are_refused_and_send_nothing(net, who, doc, cover, status, code):
    city, county_a = net.nodes["city"], net.nodes["county-a"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    inbox_item(county_a, A1, doc_id)
    county_a.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    meta = {**notice_meta(A1, [B1]), **(cover or {})}
    if cover and "issuers" in cover:
        meta["printed_by"] = "冒名"
    with pytest.raises(RemoteError) as refused:
        forward(county_a, who, doc or doc_id, meta, net.body)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert county_a.clerk(who).get("/api/v1/outbox", {"limit": 500}) == [] or all(
        d["title"] != meta["title"] for d in county_a.clerk(who).get("/api/v1/outbox", {"limit": 500}))
    # Nor a 转发 row or a forward message: nothing half-written for a restart to resume.
    assert db_rows(county_a, "SELECT COUNT(*) FROM forwarded WHERE doc_id = ?", [doc_id]) == [(0,)]
    assert db_rows(county_a, "SELECT COUNT(*) FROM outgoing WHERE doc_id = ? AND type = 'forward'", [doc_id]) == [(0,)]


def test_a_recalled_document_cannot_be_forwarded(net):
    city, county_a = net.nodes["city"], net.nodes["county-a"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    inbox_item(county_a, A1, doc_id)
    city.clerk(CITY).post(f"/api/v1/outbox/{doc_id}/recall")
    wait_for(lambda: county_a.clerk(A1).get(f"/api/v1/inbox/{doc_id}")["status"] == "recalled", 60,
             what="the recall at 兰山区")
    with pytest.raises(RemoteError) as refused:
        forward(county_a, A1, doc_id, notice_meta(A1, [B1]), net.body)
    assert (refused.value.status, refused.value.code) == (409, "DOC_RECALLED")


def test_a_forward_is_told_only_by_a_node_and_unit_the_document_went_to_and_once(net):
    """转发告知 forged or replayed: from a node the document never went to, naming a unit of the right node
    that did not receive it, answering a message we never sent — refused (NOTICE_NOT_OURS), nothing
    shown; the genuine one twice in two envelopes shows once."""
    city, county_a, county_b = net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1], title="关于做好防汛准备工作的通知"), net.body)["doc_id"]
    inbox_item(county_a, A1, doc_id)
    [(sent_id,)] = db_rows(city, "SELECT message_id FROM outgoing WHERE doc_id = ? AND type = 'document'", [doc_id])
    cover = "0193a5b2-0000-7000-8000-0000000000c0"

    def told(node, from_unit: str, in_reply_to: str | None = sent_id) -> str:
        notice = Notice(MessageType.FORWARDED, doc_id, (B1,), dt.datetime.now(dt.UTC).replace(microsecond=0),
                        "王五", text=cover)
        message_id, envelope = forge_envelope(node, city, from_unit=from_unit, to_units=[CITY], payload=notice.encode(),
                                              type=MessageType.FORWARDED, in_reply_to=in_reply_to)
        [result] = RawPeer(city, tls_context_of(node)).post_envelopes(envelope)[1]["results"]
        assert "receipt" in result, result
        return message_id

    for node, unit, reply in ((county_b, B1, sent_id), (county_a, A2, sent_id), (county_a, A1, None)):
        assert applied(city, told(node, unit, reply)) == ("failed", "NOTICE_NOT_OURS")
    assert city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")["forwarded_on"] == []
    for _ in range(2):
        assert applied(city, told(county_a, A1)) == ("done", None)
    [shown] = city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")["forwarded_on"]
    assert (shown["unit"], shown["cover_doc_id"], shown["units"], shown["by"]) == (A1, cover, [B1], "王五")


def test_a_forward_by_a_unit_of_the_issuers_own_node_shows_in_its_track(net, tmp_path):
    city = net.nodes["city"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [CITY_LOCAL], title="关于做好冬季供暖工作的通知"),
                           net.body)["doc_id"]
    inbox_item(city, CITY_LOCAL, doc_id)
    city.clerk(CITY_LOCAL).post(f"/api/v1/inbox/{doc_id}/sign-for")
    meta_file = tmp_path / "cover.json"
    meta_file.write_text(json.dumps(notice_meta(CITY_LOCAL, [B1], title="关于转发供暖通知的通知"), ensure_ascii=False),
                         "utf-8")
    out = gwx("forward", doc_id, "--meta", str(meta_file), "--body", str(net.body), "--json",
              "--node", city.ready["local_url"], "--token-file", str(token_file(city, f"clerk-{CITY_LOCAL}")))
    assert out.returncode == 0, out.stderr
    [told] = city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")["forwarded_on"]  # applied with the forward
    assert (told["unit"], told["cover_doc_id"], told["units"], told["node"]) == (
        CITY_LOCAL, json.loads(out.stdout)["doc_id"], [B1], "city")


def applied(node, message_id: str) -> tuple:
    return wait_for(lambda: db_value(node, "SELECT state FROM received WHERE message_id = ?", [message_id])
                    in ("done", "failed") and
                    db_rows(node, "SELECT state, error_code FROM received WHERE message_id = ?", [message_id])[0],
                    30, what=f"{message_id} applied")
