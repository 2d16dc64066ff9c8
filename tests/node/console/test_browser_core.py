"""In a real browser against a real node process: a clerk signs in, sees the home page, signs out.

The node runs as ``gwx node run`` (node.localnet), the user is made with ``gwx user add``, the
browser is Debian's chromium driven by Playwright; the session cookie is HttpOnly, Secure and
SameSite=Strict, which chromium keeps over http://127.0.0.1 (a secure context).
"""

from __future__ import annotations

import pytest

from tests.node.console.browser_support import DESK, PHONE, add_user, chromium, sign_in
from tests.node.network.network_support import CITY, CITY_LOCAL, start_network

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    base = tmp_path_factory.mktemp("console-core")
    net = start_network(base, {"city": ([CITY, CITY_LOCAL], {})})
    node = net.nodes["city"]
    try:
        add_user(node.directory, "wangfang", "王芳", "clerk", [CITY_LOCAL], base)
        yield node
    finally:
        net.stop_all()


@pytest.mark.parametrize("viewport", [DESK, PHONE], ids=["desk", "phone"])
def test_a_clerk_signs_in_sees_the_home_page_and_signs_out(city, viewport):
    base_url = city.ready["local_url"]
    with chromium() as browser:
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        sign_in(page, base_url, "wangfang", "wrong password!")
        assert "用户名或密码错误" in page.inner_text(".problem")
        sign_in(page, base_url, "wangfang")
        page.wait_for_url(f"{base_url}/console/")
        assert page.inner_text("h1") == "您好，王芳"
        assert "临沂市财政局" in page.inner_text(".who") and "收发员" in page.inner_text(".who")
        assert page.inner_text("#pending-count") == "0"
        cookie = next(c for c in context.cookies() if c["name"] == "gwx_console")
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        # Nothing on the page is wider than the screen: the layout fits a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.click("text=退出")
        page.wait_for_url(f"{base_url}/console/sign-in")
        assert not [c for c in context.cookies() if c["name"] == "gwx_console"]
        page.goto(f"{base_url}/console/")
        assert page.url.startswith(f"{base_url}/console/sign-in")
        context.close()
