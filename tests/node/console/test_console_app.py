"""The console's pages over HTTP, in process, against the real document service and store.

What a clerk (or an attacker) would notice: signing in sets a session cookie that scripts cannot
read and other sites cannot send; a form without the session's CSRF token, or from another site,
is refused with a typed page and changes nothing; an expired session lands on the sign-in page
saying so; a locked account is told so in words; every page carries the security headers.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from node.config import Listener
from node.console.accounts import IDLE_SECONDS, LOCK_AFTER
from node.console.security import allowed_hosts
from tests.node.api.local_api_support import UNIT_B, make_env, send, template
from tests.node.console.console_support import PASSWORD, Browser, console, csrf_of
from tests.support import FakeClock


def run(tmp_path, scenario, clock=None):
    env = make_env(tmp_path)

    async def main():
        async with console(env, clock) as (client, accounts):
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            await scenario(env, client, accounts)
    asyncio.run(main())


async def audited(env, action):
    return [e for e in await env.store.audit.events(limit=1000) if e.action == action]


def test_signing_in_sets_a_strict_cookie_and_shows_the_clerks_pending_documents(tmp_path):
    async def scenario(env, client, accounts):
        doc_id = await send(client, env, doc_meta=None)
        browser = Browser(client)
        response, _ = await browser.sign_in("lisi")
        assert response.status == 303 and response.headers["Location"] == "/console/"
        cookie = next(h for h in response.headers.getall("Set-Cookie") if h.startswith("gwx_console="))
        for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/console/"):
            assert flag.lower() in cookie.lower(), cookie
        response, page = await browser.get("/console/")
        assert response.status == 200
        assert "李四" in page and "关于做好冬季安全生产工作的通知" in page and "福州市人民政府办公厅" in page
        assert 'id="pending-count">1<' in page
        assert doc_id
        signed_in = await audited(env, "console.signed_in")
        assert [e.subjects["user"] for e in signed_in] == ["lisi"]
    run(tmp_path, scenario)


def test_every_page_carries_the_security_headers(tmp_path):
    async def scenario(env, client, accounts):
        browser = Browser(client)
        await browser.sign_in("lisi")
        for path in ("/console/", "/console/sign-in", "/console/no/such/page"):
            response, _ = await browser.get(path)
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Cache-Control"] == "no-store"
    run(tmp_path, scenario)


def test_a_forged_csrf_token_is_refused_with_403_and_does_nothing(tmp_path):
    async def scenario(env, client, accounts):
        browser = Browser(client)
        await browser.sign_in("lisi")
        response, page = await browser.post("/console/sign-out", {"csrf": "forged"})
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
        assert "CONSOLE_CSRF" in page and "操作未执行" in page
        response, _ = await browser.get("/console/")  # still signed in: the sign-out did not happen
        assert response.status == 200
        assert await audited(env, "console.signed_out") == []
        response, page = await browser.post("/console/sign-out", {})
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
        response, page = await browser.post("/console/sign-out", {"csrf": "令牌"})  # not a 500 either
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
    run(tmp_path, scenario)


def test_a_form_from_another_site_is_refused_even_with_the_right_token(tmp_path):
    async def scenario(env, client, accounts):
        browser = Browser(client)
        await browser.sign_in("lisi")
        _, home = await browser.get("/console/")
        token = csrf_of(home)
        for origin in ("https://evil.example", None):
            response, page = await browser.post("/console/sign-out", {"csrf": token}, origin=origin)
            assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_ORIGIN", page
        response, _ = await browser.post("/console/sign-out", {"csrf": token})
        assert response.status == 303 and response.headers["Location"] == "/console/sign-in"
        response, _ = await browser.get("/console/")
        assert response.status == 303
    run(tmp_path, scenario)


def test_an_expired_session_leads_to_the_sign_in_page_saying_so(tmp_path):
    clock = FakeClock(template().now)

    async def scenario(env, client, accounts):
        browser = Browser(client)
        await browser.sign_in("lisi")
        clock.advance(seconds=IDLE_SECONDS + 1)
        response, _ = await browser.get("/console/")
        assert response.status == 303
        assert response.headers["Location"] == "/console/sign-in?why=CONSOLE_SESSION_EXPIRED"
        response, page = await browser.get(response.headers["Location"])
        assert response.status == 200 and "登录已过期，请重新登录" in page
        assert [e.details["reason"] for e in await audited(env, "console.signed_out")] == ["idle"]
    run(tmp_path, scenario, clock)


def test_a_locked_account_is_told_in_words_and_wrong_passwords_are_audited(tmp_path):
    async def scenario(env, client, accounts):
        browser = Browser(client)
        for _ in range(LOCK_AFTER - 1):
            response, page = await browser.sign_in("lisi", "not the password")
            assert response.status == 401 and "用户名或密码错误" in page
            assert response.headers["X-Gwx-Error"] == "CONSOLE_SIGN_IN_REFUSED"
        response, page = await browser.sign_in("lisi", "not the password")
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_ACCOUNT_LOCKED"
        assert "账户已暂时锁定" in page and "CONSOLE_ACCOUNT_LOCKED" in page
        response, page = await browser.sign_in("lisi", PASSWORD)
        assert response.status == 403 and "账户已暂时锁定" in page and "gwx_console" not in browser.cookies
        refused = await audited(env, "console.sign_in_refused")
        assert [e.details["reason"] for e in refused] == ["wrong_password"] * LOCK_AFTER + ["locked"]
        assert all(e.subjects["user"] == "lisi" for e in refused)
    run(tmp_path, scenario)


def test_a_wrong_password_and_an_unknown_login_get_the_same_page(tmp_path):
    """Nothing on the page tells whether a login exists (no count of attempts left for real ones)."""
    def comparable(page: str, login: str) -> str:
        return re.sub(r'name="csrf" value="[^"]*"', "", page).replace(f'value="{login}"', 'value=""')

    async def scenario(env, client, accounts):
        browser = Browser(client)
        known, known_page = await browser.sign_in("lisi", "not the password")
        unknown, unknown_page = await browser.sign_in("nobody", "not the password")
        assert known.status == unknown.status == 401
        assert known.headers["X-Gwx-Error"] == unknown.headers["X-Gwx-Error"] == "CONSOLE_SIGN_IN_REFUSED"
        assert comparable(known_page, "lisi") == comparable(unknown_page, "nobody")
        assert "还可尝试" not in known_page
    run(tmp_path, scenario)


def test_the_sign_in_form_needs_its_own_token_and_never_redirects_off_site(tmp_path):
    async def scenario(env, client, accounts):
        browser = Browser(client)
        for forged in ("x", "令牌"):
            response, page = await browser.post("/console/sign-in", {"csrf": forged, "login": "lisi",
                                                                      "password": PASSWORD})
            assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
        _, page = await browser.get("/console/sign-in?next=//evil.example/x")
        response, _ = await browser.post("/console/sign-in", {"csrf": csrf_of(page), "login": "lisi",
                                                              "password": PASSWORD, "next": "//evil.example/x"})
        assert response.status == 303 and response.headers["Location"] == "/console/"
        for bad_next in ("/console/inbox\r\nSet-Cookie: x=1", "/console/\tinbox", "/console/inbox\x00"):
            _, page = await browser.get("/console/sign-in")
            response, _ = await browser.post("/console/sign-in", {"csrf": csrf_of(page), "login": "lisi",
                                                                  "password": PASSWORD, "next": bad_next})
            assert response.status == 303 and response.headers["Location"] == "/console/", repr(bad_next)
    run(tmp_path, scenario)


def test_a_request_for_another_host_name_is_refused_even_from_that_origin(tmp_path):
    """DNS rebinding: a page at rebound.example whose name now points at this node sends Host and
    Origin both rebound.example. Only the host names the node is reached by are answered."""
    async def scenario(env, client, accounts):
        browser = Browser(client)
        _, page = await browser.get("/console/sign-in")
        port = client.server.port
        rebound = {"Host": f"rebound.example:{port}"}
        response, page = await browser.post("/console/sign-in", {"csrf": csrf_of(page), "login": "lisi",
                                                                  "password": PASSWORD},
                                            origin=f"http://rebound.example:{port}", headers=rebound)
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_ORIGIN"
        assert "gwx_console" not in browser.cookies
        response, _ = await browser.get("/console/sign-in", headers=rebound)
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_ORIGIN"
        response, _ = await browser.sign_in("lisi")  # by the listener's own name: as before
        assert response.status == 303
    run(tmp_path, scenario)


@pytest.mark.parametrize(("listener", "names"), [
    (Listener("127.0.0.1", 8080), {"127.0.0.1", "::1", "localhost"}),
    (Listener("10.1.0.5", 8080, "https://gwx.fz.gov.cn/"), {"10.1.0.5", "gwx.fz.gov.cn"}),
    (Listener("0.0.0.0", 8080, "https://gwx.fz.gov.cn/"), {"gwx.fz.gov.cn"}),
    (Listener("0.0.0.0", 8080), set()),  # says nothing of its names: any (README)
    (Listener("0.0.0.0", 8080, hosts=("GWX.example",)), {"gwx.example"}),
])
def test_the_console_answers_to_the_listeners_names(listener, names):
    assert allowed_hosts(listener) == names


def test_signing_in_again_ends_the_session_the_old_cookie_named(tmp_path):
    async def scenario(env, client, accounts):
        browser = Browser(client)
        await browser.sign_in("lisi")
        old = browser.cookies["gwx_console"]
        response, _ = await browser.sign_in("lisi")
        assert response.status == 303 and browser.cookies["gwx_console"] != old
        stale = Browser(client)
        stale.cookies["gwx_console"] = old
        response, _ = await stale.get("/console/")
        assert response.status == 303  # the old session is over: to the sign-in page
        assert [e.details["reason"] for e in await audited(env, "console.signed_out")] == ["signed_in_again"]
        response, _ = await browser.get("/console/")
        assert response.status == 200
    run(tmp_path, scenario)


def test_bad_requests_get_typed_pages_not_tracebacks(tmp_path):
    async def scenario(env, client, accounts):
        browser = Browser(client)
        await browser.sign_in("lisi")
        _, home = await browser.get("/console/")
        response, page = await browser.post("/console/sign-out", {"csrf": csrf_of(home), "x": "y" * 20000})
        assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_FORM_TOO_LARGE"
        response, page = await browser.get("/console/static/..%2Fapp.py")
        assert response.status == 404 and "CONSOLE_NO_SUCH_PAGE" in page
        response, page = await browser.get("/console/nowhere")
        assert response.status == 404 and "没有这个页面" in page and "Traceback" not in page
        response, css = await browser.get("/console/static/console.css")
        assert response.status == 200 and "@media" in css
        response, _ = await browser.get("/console/")  # still signed in: nothing was lost
        assert response.status == 200
    run(tmp_path, scenario)
