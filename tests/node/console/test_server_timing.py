"""Every answer of the local listener to a signed-in principal — API and console pages — says how long
the node took to make it (``Server-Timing: app;dur=MS``), the server time bench/console.py reports."""

from __future__ import annotations

import asyncio
import re

from tests.node.api.local_api_support import UNIT_B, make_env, send
from tests.node.console.console_support import PASSWORD, Browser, console

_TIMING = re.compile(r"app;dur=([0-9]+\.[0-9])")


def _server_ms(response) -> float:
    match = _TIMING.fullmatch(response.headers.get("Server-Timing", ""))
    assert match, response.headers.get("Server-Timing")
    return float(match.group(1))


def test_api_answers_and_console_pages_carry_their_server_time(tmp_path):
    env = make_env(tmp_path)

    async def main():
        async with console(env) as (client, accounts):
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            await send(client, env)
            response = await client.get("/api/v1/inbox", headers=env.auth(env.clerk_b))
            assert response.status == 200 and 0 <= _server_ms(response) < 60_000
            response = await client.get("/api/v1/nothing", headers=env.auth(env.clerk_b))
            assert response.status == 404 and _server_ms(response) >= 0  # an error answer too
            lisi = Browser(client)
            assert (await lisi.sign_in("lisi"))[0].status == 303
            response, page = await lisi.get("/console/inbox?folder=pending")
            assert response.status == 200 and "待签收" in page and _server_ms(response) >= 0
    asyncio.run(main())


def test_server_time_covers_the_handler_so_a_slow_page_shows_its_delay(tmp_path):
    """The figure bench/console.py reports is the handler's time: a store read made 300 ms slower
    shows as ≥ 300 ms (a middleware that timed nothing, or only after the handler, would not)."""
    env = make_env(tmp_path)

    async def main():
        async with console(env) as (client, accounts):
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            lisi = Browser(client)
            assert (await lisi.sign_in("lisi"))[0].status == 303
            fast = _server_ms((await lisi.get("/console/inbox?folder=pending"))[0])
            inbox = env.service.inbox

            async def slow_inbox(*args, **kwargs):  # the delay a large store would add, made certain
                await asyncio.sleep(0.3)
                return await inbox(*args, **kwargs)
            env.service.inbox = slow_inbox
            response, page = await lisi.get("/console/inbox?folder=pending")
            assert response.status == 200 and "待签收" in page
            assert _server_ms(response) >= 300 > fast
    asyncio.run(main())


def test_unauthenticated_answers_and_streamed_downloads_carry_no_server_time(tmp_path):
    """No timing oracle for whoever is not signed in (token checks, the sign-in form and its answer);
    a streamed 台账 has sent its headers before its time is known, so it carries none."""
    env = make_env(tmp_path)

    async def main():
        async with console(env) as (client, accounts):
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            await send(client, env)
            response = await client.get("/api/v1/inbox", headers={"Authorization": "Bearer not-a-token"})
            assert response.status == 401 and "Server-Timing" not in response.headers
            response = await client.get("/api/v1/inbox")
            assert response.status == 401 and "Server-Timing" not in response.headers
            lisi = Browser(client)
            response, _ = await lisi.get("/console/sign-in")
            assert response.status == 200 and "Server-Timing" not in response.headers
            response, _ = await lisi.sign_in("lisi", "a wrong password")
            assert "Server-Timing" not in response.headers
            response, _ = await lisi.sign_in("lisi")
            assert response.status == 303 and "Server-Timing" not in response.headers  # not yet signed in
            response = await client.get("/api/v1/ledger/received", params={"format": "xlsx"},
                                        headers=env.auth(env.clerk_b))
            assert response.status == 200 and "Server-Timing" not in response.headers
            await response.read()
    asyncio.run(main())
