"""The console at a phone's width (375 px) in a real browser, between two real nodes: every main page
of each role — the clerk's home, folders, document, send, track and statistics pages, the
supervisor's 督办 list, the operator's statistics — is no wider than the screen, and every button on
it lies within the screen and is large enough to tap. Then the city's clerk urges the unit that has
not signed from the track page on the phone, and the county's supervisor sees the late document in
red. Debian's chromium, driven by Playwright.

With ``GWX_SCREENSHOTS=1`` it also writes the new pages' screenshots kept in docs/ (docs/console-*.png).
"""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse

import pytest
from playwright.sync_api import expect

from exchange_protocol.model import BEIJING
from node.localnet import send_document, wait_for
from tests.node.console.browser_support import DESK, PHONE, REPO, chromium, city_and_county, signed_in
from tests.node.network.network_support import A1, A2, CITY, inbox_item, notice_meta

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SCREENSHOTS = os.environ.get("GWX_SCREENSHOTS") == "1"
MIN_TAP = 24  # px: the smallest button height a finger can still hit (WCAG 2.2's target minimum)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with city_and_county(tmp_path_factory.mktemp("console-phone"), {
            "city": [("sunli", "孙丽", "clerk", [CITY]), ("ops", "运维", "operator", [])],
            "county-a": [("liuyang", "刘洋", "clerk", [A1]), ("zhao", "赵督查", "supervisor", [A1, A2])]}) as network:
        yield network


def shoot(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(REPO / "docs" / f"console-{name}.png"), full_page=True)


def fits_a_phone(page, what: str) -> None:
    """No horizontal scroll, and every visible button on the screen's width and tall enough to tap."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{what}: {width}px wide"
    boxes = page.eval_on_selector_all(
        "button, input[type=submit]",
        "bs => bs.filter(b => b.offsetParent !== null).map(b => {const r = b.getBoundingClientRect();"
        " return [b.textContent.trim(), r.left, r.right, r.height];})")
    assert boxes, f"{what}: no buttons"
    for text, left, right, height in boxes:
        assert left >= 0 and right <= PHONE["width"] and height >= MIN_TAP, (what, text, left, right, height)


def test_the_main_pages_fit_a_phone_and_its_buttons_work(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    soon = (dt.datetime.now(BEIJING) + dt.timedelta(seconds=4)).replace(microsecond=0).isoformat()
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1], [A2], title="关于报送冬季安全检查情况的通知",
                                                   deadline=soon), net.body)["doc_id"]
    inbox_item(county, A1, doc_id)
    inbox_item(county, A2, doc_id)
    county.clerk(A2).post(f"/api/v1/inbox/{doc_id}/sign-for")
    wait_for(lambda: inbox_item(county, A1, doc_id)["overdue"], 30, what="the 办理时限 to pass")
    city_url, county_url = city.ready["local_url"], county.ready["local_url"]
    quoted = urllib.parse.quote(doc_id, safe="")

    with chromium() as browser:
        page = signed_in(browser, city_url, "sunli", PHONE)
        for path in ("/console/", "/console/inbox", "/console/outbox", f"/console/doc/{quoted}", "/console/send",
                     f"/console/doc/{quoted}/track", "/console/stats?period=day"):
            page.goto(city_url + path)
            page.wait_for_load_state("load")
            fits_a_phone(page, path)
        # The track page: A2 has signed, A1 is late; urge A1 from the phone.
        page.goto(f"{city_url}/console/doc/{quoted}/track")
        wait_for(lambda: page.reload() or "已签收 1/2" in page.inner_text("#signed-count"), 30,
                 what="A2's 签收 at the sender")
        shoot(page, "track-phone")
        late = page.locator(f"#recipients tr[data-unit='{A1}']")
        expect(late).to_contain_text("超期")
        late.locator("button", has_text="催办").click()
        assert page.inner_text("#done") == "已催办。"
        expect(late).to_contain_text("已催办 1 次")
        wait_for(lambda: inbox_item(county, A1, doc_id)["urge_count"] == 1, 30, what="the 催办 at the county")
        page.goto(f"{city_url}/console/stats?period=day")
        shoot(page, "stats-phone")

        supervisor = signed_in(browser, county_url, "zhao", PHONE)
        fits_a_phone(supervisor, "supervisor's home")
        supervisor.click("#supervision-link")
        rows = supervisor.locator("#supervision tbody tr")
        expect(rows).to_have_count(1)  # A1 late; A2 signed in time
        expect(rows.first).to_contain_text("宽限期内")
        expect(rows.first).to_contain_text("关于报送冬季安全检查情况的通知")
        fits_a_phone(supervisor, "督办")
        shoot(supervisor, "supervision-phone")

        clerk = signed_in(browser, county_url, "liuyang", PHONE)
        for path in ("/console/", "/console/inbox?folder=overdue", f"/console/doc/{quoted}", "/console/stats"):
            clerk.goto(county_url + path)
            clerk.wait_for_load_state("load")
            fits_a_phone(clerk, "county " + path)

        operator = signed_in(browser, city_url, "ops", PHONE)
        operator.goto(f"{city_url}/console/stats")
        fits_a_phone(operator, "operator's statistics")

        if SCREENSHOTS:
            desk = signed_in(browser, city_url, "sunli", DESK)
            desk.goto(f"{city_url}/console/doc/{quoted}/track")
            shoot(desk, "track-desk")
            desk.goto(f"{city_url}/console/stats?period=day")
            shoot(desk, "stats-desk")
