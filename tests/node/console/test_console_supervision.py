"""The supervisor's 督办 list (node.console.supervision_page) in process, over the real document
service and the real escalation sweep (only the clock is fake): a supervisor sees the units it
supervises — late in their grace, then escalated, then settled by the unit's 签收 — and nothing of
other units; every bad request is a typed page."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import urllib.parse

import pytest

from exchange_protocol.supervision import WEEKENDS_ONLY, escalation_due_at
from node.api.auth import Principal
from pki.errors import GwxError
from tests.node.api.local_api_support import UNIT_A, UNIT_B, UNIT_C, meta, send
from tests.node.console.console_support import PASSWORD, Browser, console, csrf_of
from tests.node.supervision.test_escalation import supervised_env


def run(tmp_path, scenario):
    env, clock, _ = supervised_env(tmp_path)  # UNIT_C supervises UNIT_B

    async def main():
        async with console(env) as (client, accounts):
            await accounts.add("zhao", "赵督查", "supervisor", [UNIT_B], PASSWORD)
            await accounts.add("wu", "吴督查", "supervisor", [UNIT_A], PASSWORD)
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            await accounts.add("ops", "王五", "operator", [], PASSWORD)
            await scenario(env, clock, client)
    asyncio.run(main())


async def signed_in(client, login) -> Browser:
    browser = Browser(client)
    response, _ = await browser.sign_in(login)
    assert response.status == 303
    return browser


def listed(page: str) -> list[tuple[str, str]]:
    return re.findall(r'data-unit="([0-9A-Z]{18})" data-doc="([^"]+)"', page)


def test_a_supervisor_follows_its_units_late_documents_from_grace_to_escalation_to_settled(tmp_path):
    async def scenario(env, clock, client):
        doc_id = await send(client, env)  # 主送 UNIT_B, 抄送 UNIT_C: both late, only UNIT_B supervised by zhao
        deadline = dt.datetime.fromisoformat(meta()["deadline"])
        clock.now = deadline + dt.timedelta(hours=1)
        zhao = await signed_in(client, "zhao")
        _, home = await zhao.get("/console/")
        assert 'href="/console/supervision"' in home
        response, page = await zhao.get("/console/supervision")
        assert response.status == 200
        assert listed(page) == [(UNIT_B, doc_id)] and "宽限期内" in page and "不足1个工作日" in page
        _, page = await zhao.get("/console/supervision?state=open")
        assert listed(page) == [] and "没有督办中的公文" in page

        clock.now = escalation_due_at(deadline, WEEKENDS_ONLY, 3)
        await env.service.processor.escalator.sweep()
        zhao = await signed_in(client, "zhao")  # days went by: the session idled out
        _, page = await zhao.get("/console/supervision")
        assert listed(page) == [(UNIT_B, doc_id)] and "已督办" in page and "3个工作日" in page
        _, page = await zhao.get(f"/console/supervision?state=open&unit={UNIT_B}")
        assert listed(page) == [(UNIT_B, doc_id)] and "督办中" in page and "关于做好冬季安全生产工作的通知" in page

        lisi = await signed_in(client, "lisi")
        path = f"/console/doc/{urllib.parse.quote(doc_id, safe='')}"
        _, page = await lisi.get(path)
        response, _ = await lisi.post(path + "/sign-for", {"csrf": csrf_of(page)})
        assert response.status == 303
        _, page = await zhao.get("/console/supervision")
        assert listed(page) == [] and "没有超期的公文" in page
        _, page = await zhao.get("/console/supervision?state=settled")
        assert listed(page) == [(UNIT_B, doc_id)] and "已签收：李四" in page

        wu = await signed_in(client, "wu")  # supervises UNIT_A only: sees nothing of UNIT_B
        for state in ("late", "open", "settled"):
            _, page = await wu.get(f"/console/supervision?state={state}")
            assert listed(page) == [], state
    run(tmp_path, scenario)


def test_bad_requests_on_the_supervision_page_are_typed(tmp_path):
    async def scenario(env, clock, client):
        await send(client, env)
        wu = await signed_in(client, "wu")
        response, _ = await wu.get(f"/console/supervision?unit={UNIT_B}")  # another supervisor's unit
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "API_FORBIDDEN"
        response, _ = await wu.get(f"/console/supervision?state=open&unit={UNIT_C}")
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "API_FORBIDDEN"
        for bad in ("state=lost", "unit=123", "sort=x", "after=x", "state=open&after=-1", "state=late&state=open"):
            response, _ = await wu.get("/console/supervision?" + bad)
            assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_FILTER", bad
        response, _ = await wu.get(f"/console/doc/{urllib.parse.quote('gwx-x', safe='')}")  # a clerk's page
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_WRONG_ROLE"
        for login in ("lisi", "ops"):  # not supervisors
            other = await signed_in(client, login)
            response, _ = await other.get("/console/supervision")
            assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_WRONG_ROLE", login
        anonymous = Browser(client)
        response, _ = await anonymous.get("/console/supervision")
        assert response.status == 303 and "/console/sign-in" in response.headers["Location"]
    run(tmp_path, scenario)


def test_the_supervisors_list_pages_through_late_rows_and_items_by_its_cursors(tmp_path):
    async def scenario(env, clock, client):
        docs = {await send(client, env) for _ in range(3)}
        deadline = dt.datetime.fromisoformat(meta()["deadline"])
        clock.now = escalation_due_at(deadline, WEEKENDS_ONLY, 3)
        await env.service.processor.escalator.sweep()
        zhao = Principal("console:zhao", "赵督查", "supervisor", None, (UNIT_B,))
        for state in ("late", "open"):
            seen, after = [], None
            while True:
                page = await env.service.supervised(zhao, state, limit=1, after=after)
                seen += [(i["unit"], i["doc_id"]) for i in page["items"]]
                if page["next"] is None:
                    break
                after = page["next"]
            assert sorted(seen) == sorted((UNIT_B, d) for d in docs) and len(seen) == 3, state
        with pytest.raises(GwxError) as refused:
            await env.service.supervised(zhao, "late", unit=UNIT_C)
        assert refused.value.code == "API_FORBIDDEN"
        with pytest.raises(GwxError) as refused:
            await env.service.supervised(Principal("t", "张三", "clerk", UNIT_A), "late")
        assert refused.value.code == "API_FORBIDDEN"
    run(tmp_path, scenario)
