"""补发 across real node processes: the city adds units to a document it already sent — on another
node and on its own — and the very same sealed package reaches them, verifies, appears in the
city's track like the first recipients and follows their 签收. Bad requests are refused with typed
codes and change nothing."""

from __future__ import annotations

import io

import pytest

from node.cli.api_client import RemoteError
from node.localnet import send_document, wait_for
from pki.unit_code import make_unit_code
from tests.node.network.network_support import (
    A1,
    B1,
    CITY,
    CITY_LOCAL,
    gwx,
    inbox_item,
    notice_meta,
    start_network,
    token_file,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = start_network(tmp_path_factory.mktemp("add-recipients"),
                            {"city": ([CITY, CITY_LOCAL], {}), "county-a": ([A1], {}), "county-b": ([B1], {})})
    yield network
    network.stop_all()


def package(node, unit: str, doc_id: str) -> bytes:
    out = io.BytesIO()
    node.clerk(unit).download(f"/api/v1/inbox/{doc_id}/package", out)
    return out.getvalue()


def statuses(node, unit: str, doc_id: str) -> dict[str, tuple[str, str]]:
    return {r["unit"]: (r["role"], r["status"]) for r in node.clerk(unit).get(f"/api/v1/outbox/{doc_id}")["recipients"]}


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
