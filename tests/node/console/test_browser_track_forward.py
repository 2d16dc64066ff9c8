"""The issuer's track page shows a forward of its document, in a real browser between two real nodes:
the city's office sends a 通知 to 兰山区, whose clerk signs for it and forwards it (gwx forward) to a
unit of its own node with a cover 通知; the city's clerk opens the document, follows the link to its
track page and reads who forwarded it, to how many units, under which cover (a 转发告知 from the
county's node). Debian's chromium, driven by Playwright."""

from __future__ import annotations

import json

import pytest

from node.localnet import send_document, wait_for
from tests.node.console.browser_support import chromium, city_and_county, signed_in
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    UNIT_NAMES,
    gwx,
    inbox_item,
    notice_meta,
    token_file,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with city_and_county(tmp_path_factory.mktemp("console-track-forward"),
                         {"city": [("sunli", "孙丽", "clerk", [CITY])]}) as network:
        yield network


def test_the_issuers_track_page_shows_who_forwarded_its_document_under_which_cover(net, tmp_path):
    city, county = net.nodes["city"], net.nodes["county-a"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1], title="关于做好森林防火工作的通知"), net.body)["doc_id"]
    inbox_item(county, A1, doc_id)
    county.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    meta_file = tmp_path / "cover.json"
    meta_file.write_text(json.dumps(notice_meta(A1, [A2], title="关于转发森林防火通知的通知"), ensure_ascii=False),
                         "utf-8")
    out = gwx("forward", doc_id, "--meta", str(meta_file), "--body", str(net.body), "--json",
              "--node", county.ready["local_url"], "--token-file", str(token_file(county, f"clerk-{A1}")))
    assert out.returncode == 0, out.stderr
    cover_id = json.loads(out.stdout)["doc_id"]
    wait_for(lambda: city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")["forwarded_on"], 60,
             what="the forward told to the city")

    with chromium() as browser:
        page = signed_in(browser, city.ready["local_url"], "sunli")
        page.click("#tile-outbox")
        page.click("text=关于做好森林防火工作的通知")
        page.click("#track-link")
        told = page.locator("#forwarded-on li")
        assert told.count() == 1
        text = told.first.inner_text()
        assert UNIT_NAMES[A1] in text and "转发给 1 个单位" in text and cover_id in text, text
