"""督办 on one node (the supervising unit hosted with the late one): red lights in the API, the
overdue and escalated marks set once by the sweep as the (fake) clock moves, the supervisor's list,
settlement by 签收, and refusals of bad requests. The real document service and SQLite store; the
only fake is the clock."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from exchange_protocol.supervision import WEEKENDS_ONLY, escalation_due_at
from pki.unit_code import make_unit_code
from tests.node.api.local_api_support import (
    UNIT_A,
    UNIT_B,
    UNIT_C,
    Env,
    expect_error,
    make_env,
    meta,
    send,
    template,
)
from tests.support import FakeClock


def supervised_env(tmp: Path, supervisor: str = UNIT_C) -> tuple[Env, FakeClock, str]:
    """``supervisor`` supervises UNIT_B (node.toml's parent: no directory); a clock of this test's own."""
    env = make_env(tmp)
    units = tuple(dataclasses.replace(u, parent=supervisor) if u.code == UNIT_B else u for u in env.config.units)
    env.config = dataclasses.replace(env.config, units=units)
    clock = FakeClock(template().now)
    env.ctx = dataclasses.replace(env.ctx, config=env.config, clock=clock)
    _, clerk_c = env.tokens.issue("赵六", "clerk", UNIT_C)
    return env, clock, clerk_c


def run(env: Env, scenario) -> None:
    async def main() -> None:
        async with env.serve() as app, TestClient(TestServer(app)) as client:
            await scenario(client)
    asyncio.run(main())


async def get(client, env: Env, token: str, path: str):
    response = await client.get(path, headers=env.auth(token))
    assert response.status == 200, await response.text()
    return await response.json()


async def audit_actions(env: Env, doc_id: str) -> list[str]:
    return [e.action for e in await env.store.audit.events(doc_id=doc_id, limit=1000)]


def test_an_overdue_document_turns_red_and_is_escalated_once_to_the_supervisor_until_signed(tmp_path):
    env, clock, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env)
        deadline = dt.datetime.fromisoformat(meta()["deadline"])
        sweep = env.service.processor.escalator.sweep
        [item] = await get(client, env, env.clerk_b, "/api/v1/inbox")
        assert (item["overdue"], item["overdue_by"], item["escalated_at"]) == (False, None, None)
        assert await sweep() == {"noted": 0, "escalated": 0}

        clock.now = deadline + dt.timedelta(hours=1)
        assert await sweep() == {"noted": 2, "escalated": 0}  # B and C (抄送): both unsigned
        [item] = await get(client, env, env.clerk_b, "/api/v1/inbox")
        assert (item["overdue"], item["overdue_by"], item["escalated_at"]) == (True, 3600, None)
        assert [i["doc_id"] for i in await get(client, env, env.clerk_b, "/api/v1/inbox?overdue=true")] == [doc_id]
        track = await get(client, env, env.clerk_a, f"/api/v1/outbox/{doc_id}")
        assert {r["unit"]: (r["overdue"], r["overdue_by"]) for r in track["recipients"]} == {
            UNIT_B: (True, 3600), UNIT_C: (True, 3600)}  # the sender's red lights, per recipient
        assert await sweep() == {"noted": 0, "escalated": 0}  # noted once

        due = escalation_due_at(deadline, WEEKENDS_ONLY, 3)
        clock.now = due - dt.timedelta(seconds=1)
        assert (await sweep())["escalated"] == 0
        assert await get(client, env, clerk_c, "/api/v1/supervision") == []
        clock.now = due
        assert (await sweep())["escalated"] == 1  # B to C; C has no supervisor: not escalated (nobody to tell)
        assert (await sweep())["escalated"] == 0
        [item] = await get(client, env, env.clerk_b, "/api/v1/inbox")
        assert (item["escalated_to"], item["overdue_working_days"]) == (UNIT_C, 3)
        [duban] = await get(client, env, clerk_c, "/api/v1/supervision")
        assert (duban["doc_id"], duban["unit"], duban["from_unit"], duban["status"], duban["working_days_late"]) == (
            doc_id, UNIT_B, UNIT_A, "open", 3)
        assert duban["overdue_by"] == int((due - deadline).total_seconds())
        assert await get(client, env, env.clerk_a, "/api/v1/supervision") == []  # A supervises nobody
        actions = await audit_actions(env, doc_id)
        assert actions.count("inbox.escalated") == 1 and actions.count("supervision.escalated") == 1

        # B signs: the 督办 is settled, says by whom; nothing escalates again.
        response = await client.post(f"/api/v1/inbox/{doc_id}/sign-for", headers=env.auth(env.clerk_b))
        assert response.status == 200
        [duban] = await get(client, env, clerk_c, "/api/v1/supervision?status=settled")
        assert (duban["status"], duban["settled_by"], duban["settled_as"], duban["overdue_by"]) == (
            "settled", "李四", "signed_for", None)
        assert await get(client, env, clerk_c, "/api/v1/supervision?status=open") == []
        clock.advance(days=30)
        assert await sweep() == {"noted": 0, "escalated": 0}
        [item] = await get(client, env, env.clerk_b, "/api/v1/inbox")
        assert item["overdue"] is False
    run(env, scenario)


def test_a_document_signed_before_the_grace_ends_is_never_escalated(tmp_path):
    env, clock, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env)
        deadline = dt.datetime.fromisoformat(meta()["deadline"])
        clock.now = deadline + dt.timedelta(minutes=1)
        await env.service.processor.escalator.sweep()
        response = await client.post(f"/api/v1/inbox/{doc_id}/sign-for", headers=env.auth(env.clerk_b))
        assert response.status == 200
        clock.now = escalation_due_at(deadline, WEEKENDS_ONLY, 3) + dt.timedelta(days=10)
        assert (await env.service.processor.escalator.sweep())["escalated"] == 0  # B signed; C has no supervisor
        assert await get(client, env, clerk_c, "/api/v1/supervision") == []
        assert "supervision.escalated" not in await audit_actions(env, doc_id)
    run(env, scenario)


def test_the_supervision_list_refuses_bad_requests(tmp_path):
    env, _, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        for query, parameter in (("status=late", "status"), ("overdue=true", "overdue"), ("limit=0", "limit"),
                                 ("after=x", "after"), ("status=open&status=settled", "status")):
            error = await expect_error(await client.get(f"/api/v1/supervision?{query}", headers=env.auth(clerk_c)),
                                       400, "API_BAD_PARAMETER")
            assert error["details"]["parameter"] == parameter
        await expect_error(await client.get("/api/v1/supervision"), 401, "API_UNAUTHENTICATED")
        await expect_error(await client.get("/api/v1/supervision", headers=env.auth(env.operator)), 403,
                           "API_FORBIDDEN")
    run(env, scenario)


def test_a_supervisor_no_route_reaches_holds_back_only_its_own_row(tmp_path):
    nowhere = make_unit_code("11371399MB0000009")  # a valid code no node hosts
    env, clock, _ = supervised_env(tmp_path, supervisor=nowhere)
    units = tuple(dataclasses.replace(u, parent=UNIT_A) if u.code == UNIT_C else u for u in env.config.units)
    env.config = dataclasses.replace(env.config, units=units)  # C's supervisor (A) is reachable
    env.ctx = dataclasses.replace(env.ctx, config=env.config)

    async def scenario(client) -> None:
        doc_id = await send(client, env)
        clock.now = escalation_due_at(dt.datetime.fromisoformat(meta()["deadline"]), WEEKENDS_ONLY, 3)
        assert await env.service.processor.escalator.sweep() == {"noted": 2, "escalated": 1}  # C; B waits
        marks = await env.store.supervision.marks_for([(doc_id, UNIT_B), (doc_id, UNIT_C)])
        assert marks[(doc_id, UNIT_B)].escalated_at is None and marks[(doc_id, UNIT_C)].escalated_at is not None
        [item] = await get(client, env, env.clerk_b, "/api/v1/inbox")
        assert item["overdue"] is True and item["escalated_at"] is None
    run(env, scenario)
