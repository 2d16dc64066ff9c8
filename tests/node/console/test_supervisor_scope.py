"""A supervisor's 台账 and statistics are scoped to the units it supervises, and a supervisor account
that names a supervising unit takes its units from who that unit supervises (node.toml's parent here;
the network directory where one is held: tests/node/network/test_supervisor_directory.py). In
process over the real document service and SQLite; only the clock is fake."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest

from node.console.errors import BadUser
from node.supervision.supervisors import supervised_by
from tests.node.api.local_api_support import UNIT_A, UNIT_B, UNIT_C, meta, send
from tests.node.console.console_support import PASSWORD, Browser, console
from tests.node.supervision.test_escalation import supervised_env


def run(tmp_path, scenario):
    env, clock, _ = supervised_env(tmp_path)  # node.toml: UNIT_C is UNIT_B's parent (its supervisor)

    async def main():
        async with console(env) as (client, accounts):
            accounts.supervised_by = lambda unit: supervised_by(env.ctx, unit)  # as node.runner wires it
            await accounts.add("zhao", "赵督查", "supervisor", [UNIT_B], PASSWORD)
            await accounts.add("sun", "孙督查", "supervisor", [], PASSWORD, supervising_unit=UNIT_C)
            await scenario(env, client, accounts)
    asyncio.run(main())


async def signed_in(client, login) -> Browser:
    browser = Browser(client)
    response, _ = await browser.sign_in(login)
    assert response.status == 303
    return browser


def sections(page: str) -> set[str]:
    return {code for code in (UNIT_A, UNIT_B, UNIT_C) if f'id="stats-{code}"' in page}


def test_a_supervisors_statistics_and_ledger_are_its_units_only(tmp_path):
    async def scenario(env, client, accounts):
        await send(client, env)  # from UNIT_A: 主送 UNIT_B, 抄送 UNIT_C
        await send(client, env, doc_meta=meta(title="关于第二件事的通知"))
        zhao = await signed_in(client, "zhao")
        response, page = await zhao.get("/console/stats?side=received")
        assert response.status == 200 and sections(page) == {UNIT_B}  # not UNIT_A's, not UNIT_C's
        assert 'href="/console/stats"' in page  # the menu offers it
        response, page = await zhao.get(f"/console/stats?side=received&unit={UNIT_B}")
        assert response.status == 200 and 'id="export-xlsx"' in page and f'name="unit" value="{UNIT_B}"' in page
        response, text = await zhao.get(f"/console/ledger?side=received&unit={UNIT_B}&format=csv")
        assert response.status == 200 and response.headers["X-Gwx-Ledger-Rows"] == "2"
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[1:]
        assert len(rows) == 2 and all(UNIT_B in row for row in rows) and not any(UNIT_C in row for row in rows)
        for path in (f"/console/stats?unit={UNIT_C}", f"/console/ledger?side=received&unit={UNIT_C}",
                     f"/console/stats?side=sent&unit={UNIT_A}", f"/console/ledger?side=sent&unit={UNIT_A}"):
            response, _ = await zhao.get(path)
            assert response.status == 403 and response.headers["X-Gwx-Error"] == "API_FORBIDDEN", path
    run(tmp_path, scenario)


def test_a_supervisor_of_a_supervising_unit_sees_the_units_it_supervises(tmp_path):
    async def scenario(env, client, accounts):
        await send(client, env)
        sun = await signed_in(client, "sun")  # no unit listed: UNIT_C supervises UNIT_B (node.toml's parent)
        _, home = await sun.get("/console/")
        assert f"（{UNIT_B}）" in home and f"（{UNIT_A}）" not in home and 'id="supervising-unit"' in home
        assert "督办 1 个单位" in home
        response, page = await sun.get("/console/stats?side=received")
        assert response.status == 200 and sections(page) == {UNIT_B}
        response, _ = await sun.get("/console/ledger?side=received&format=csv")
        assert response.status == 200 and response.headers["X-Gwx-Ledger-Rows"] == "1"  # its one unit: no need to name it
        response, _ = await sun.get(f"/console/stats?unit={UNIT_C}")  # the supervising unit itself is not in scope
        assert response.status == 403
        response, page = await sun.get("/console/supervision")
        assert response.status == 200
    run(tmp_path, scenario)


def test_a_supervising_unit_is_for_supervisors_and_checked(tmp_path):
    async def scenario(env, client, accounts):
        for role, units, code, field in (("clerk", [UNIT_A], UNIT_C, "supervising_unit"),
                                         ("supervisor", [], "not-a-code", "supervising_unit"),
                                         ("supervisor", [], None, "unit")):
            with pytest.raises(BadUser) as refused:
                await accounts.add("qian", "钱某", role, units, PASSWORD, supervising_unit=code)
            assert refused.value.details["field"] == field
        assert await accounts.store.get_user("qian") is None
        assert (await accounts.store.get_user("sun")).supervising_unit == UNIT_C
    run(tmp_path, scenario)
