"""Every answer of the local listener — API and console pages — says how long the node took to make
it (``Server-Timing: app;dur=MS``), the server time bench/console.py reports for the pages."""

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
