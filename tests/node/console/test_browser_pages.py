"""A clerk's day in a real browser, between two real nodes: a sealed 通知 and a 函 sent by the city's
office reach a county unit; its clerk finds them in the folders, opens one — metadata, the body
rendered in the page, the seal report in words, the attachment —, signs for it and registers it,
returns the other with a reason; the city's clerk sees both in 发文 with who did what, and the
reason. Debian's chromium, driven by Playwright, at desk and phone width.

With ``GWX_SCREENSHOTS=1`` the test also writes the screenshots kept in docs/ (docs/console-*.png).
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from node.localnet import send_document, wait_for
from tests.node.console.browser_support import (
    DESK,
    PHONE,
    REPO,
    chromium,
    city_and_county,
    sign_in,
    signed_in,
)
from tests.node.network.network_support import A1, CITY, inbox_item, notice_meta, units, wait_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SCREENSHOTS = os.environ.get("GWX_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    # The city's unit says its level (市级); the county's, known from node.toml's peers, has none
    # (其他): two levels for the send page's level filter.
    with city_and_county(tmp_path_factory.mktemp("console-pages"), {
            "county-a": [("liuyang", "刘洋", "clerk", [A1])], "city": [("sunli", "孙丽", "clerk", [CITY])]},
            city=[{**units(CITY)[0], "level": "city"}], county=units(A1)) as network:
        yield network


def shoot(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(REPO / "docs" / f"console-{name}.png"), full_page=True)


def test_a_county_clerk_signs_for_registers_and_returns_what_the_city_sent(net, tmp_path):
    city, county = net.nodes["city"], net.nodes["county-a"]
    attachment = tmp_path / "值班安排表.txt"
    attachment.write_text("12月1日 张三\n12月2日 李四\n", "utf-8")
    notice = send_document(city, CITY, notice_meta(CITY, [A1], title="关于做好冬季安全生产工作的通知"), net.body,
                           [attachment])["doc_id"]
    letter_meta = {**notice_meta(CITY, [A1], title="关于商请提供防汛物资储备情况的函"), "kind": "函", "urgency": "加急"}
    letter = send_document(city, CITY, letter_meta, net.body)["doc_id"]
    inbox_item(county, A1, notice)
    inbox_item(county, A1, letter)
    county_url, city_url = county.ready["local_url"], city.ready["local_url"]

    with chromium() as browser:
        page = signed_in(browser, county_url, "liuyang", DESK)
        assert page.inner_text("#tile-pending .tile-count") == "2"
        page.click("#tile-pending")
        rows = page.locator("#documents tbody tr")
        expect(rows).to_have_count(2)
        shoot(page, "inbox-desk")
        page.select_option("select[name=kind]", "函")
        page.click("text=筛选")
        page.wait_for_url(re.compile(r"kind=%E5%87%BD"))  # the filtered page, not the one before it
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("关于商请提供防汛物资储备情况的函")
        page.fill("input[name=q]", "冬季安全")
        page.select_option("select[name=kind]", "")
        page.click("text=筛选")
        page.wait_for_url(re.compile(r"q=%E5%86%AC"))
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("关于做好冬季安全生产工作的通知")  # found by the search, not the 函
        page.click("text=关于做好冬季安全生产工作的通知")

        # The document page: metadata, the seal report in words, the body as page images, the attachment.
        assert page.inner_text("#doc-title") == "关于做好冬季安全生产工作的通知"
        assert "验证通过" in page.inner_text("#report-summary")
        assert "临沂市人民政府办公室" in page.inner_text("#report-summary")
        body = page.locator("#body img.page").first
        body.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 800", arg=body.element_handle())
        with page.expect_download() as download:
            page.click("text=值班安排表.txt")
        assert download.value.path().read_text("utf-8").startswith("12月1日 张三")
        shoot(page, "document-desk")
        page.click("#sign-for")
        assert page.inner_text("#done") == "已签收。"
        assert "签收人 刘洋" in page.inner_text("#doc-status")
        page.click("#register")
        assert "已登记" in page.inner_text("#doc-status")

        # The 函 goes back with a reason; the browser will not send an empty one.
        mobile = signed_in(browser, county_url, "liuyang", PHONE)
        mobile.click("text=关于商请提供防汛物资储备情况的函")
        mobile.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        assert mobile.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than a phone
        shoot(mobile, "document-phone")
        before = mobile.url
        mobile.click("#return")
        # Not sent: the browser holds the form back while the required reason is empty.
        assert mobile.eval_on_selector("textarea[name=reason]", "t => t.validity.valueMissing")
        expect(mobile).to_have_url(before)
        expect(mobile.locator("#done")).to_have_count(0)
        assert "待签收" in mobile.inner_text("#doc-status")
        mobile.fill("textarea[name=reason]", "本单位无防汛物资储备职责，请转应急管理局")
        mobile.click("#return")
        assert mobile.inner_text("#done").startswith("已退回")
        mobile.context.close()

        # The city's clerk sees who did what, and the reason, in 发文.
        wait_status(city, CITY, notice, {A1: "signed_for"})
        wait_status(city, CITY, letter, {A1: "returned"})
        sender = signed_in(browser, city_url, "sunli", DESK)
        sender.click("#tile-outbox")
        listing = sender.inner_text("#documents")
        assert re.search(r"兰山区人民政府办公室（主送）\s*已签收\s*刘洋", listing), listing
        assert "已退回" in listing
        shoot(sender, "outbox-desk")
        sender.click("text=关于商请提供防汛物资储备情况的函")
        assert "本单位无防汛物资储备职责，请转应急管理局" in sender.inner_text("#track")
        page.context.close()


def test_the_city_clerk_sends_from_the_console_and_the_county_receives_it(net, tmp_path):
    city, county = net.nodes["city"], net.nodes["county-a"]
    city_url = city.ready["local_url"]
    attachment = tmp_path / "检查表.txt"
    attachment.write_text("检查项目\n", "utf-8")
    with chromium() as browser:
        page = browser.new_context(viewport=PHONE, locale="zh-CN").new_page()
        sign_in(page, city_url, "sunli")
        # The page's script arrives only after the clerk has typed (a slow line, a loaded node): what
        # was typed before it came is checked all the same.
        held = []
        page.route("**/static/console.js", lambda route: held.append(route))
        page.click("text=拟发文")
        page.select_option("select[name=kind]", "通知")
        page.fill("input[name=title]", "关于开展冬季消防安全检查的通知")
        page.fill("input[name=doc_number]", "临政办发2026")  # checked as it is typed, by the node's rules
        for _ in range(300):  # Playwright hands over the request while it runs: wait in the page, not asleep
            if held:
                break
            page.wait_for_timeout(100)
        held[0].continue_()
        page.wait_for_selector("#meta-check.problem")
        assert "DOC_INVALID_DOC_NUMBER" in page.inner_text("#meta-check")
        page.fill("input[name=doc_number]", "临政办发〔2026〕99号")
        page.set_input_files("input[name=body]", str(net.body))
        page.set_input_files("input[name=attachment]", str(attachment))
        # Pick by level: the county's level lists its units only, and one click makes them all 主送.
        rows = page.locator("#unit-list tbody tr:not([hidden])")
        expect(rows).to_have_count(2)
        level = page.get_attribute(f"#unit-list tr:has(input[value='{A1}'])", "data-level")
        page.select_option("#level-filter", level)
        expect(rows).to_have_count(1)
        page.click("#pick-to")
        expect(page.locator("input[name=to]:checked")).to_have_count(1)
        expect(page.locator(f"input[name=to][value='{A1}']")).to_be_checked()
        page.select_option("#level-filter", "*")
        page.fill("#unit-filter", "兰山")  # and by name
        expect(rows).to_have_count(1)
        page.wait_for_selector("#meta-check.good")
        if SCREENSHOTS:  # the phone's screen only: a full-page shot resizes the page under the form
            page.screenshot(path=str(REPO / "docs" / "console-send-phone.png"))
        page.click("#send")
        assert page.inner_text("#done") == "已盖章发送。"
        assert "兰山区人民政府办公室" in page.inner_text("#track")
    item = wait_for(lambda: next((i for i in county.clerk(A1).get("/api/v1/inbox", {"limit": 500})
                                  if i["title"] == "关于开展冬季消防安全检查的通知"), None), 60, what="the county's copy")
    shown = county.clerk(A1).get(f"/api/v1/inbox/{item['doc_id']}")
    assert shown["verification"]["ok"] and [a["name"] for a in shown["attachments"]] == ["检查表.txt"]
