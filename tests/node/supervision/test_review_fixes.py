"""Review fixes on one node (real service and SQLite; the only fake is the clock): a recall after a
补发 reaches every unit, a 撤回 settles a 督办, a unit with no supervisor is not marked escalated."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from adapters.events import adapter_event
from exchange_protocol.envelope import MessageType
from exchange_protocol.notices import Escalation, decode_escalation
from exchange_protocol.supervision import WEEKENDS_ONLY, escalation_due_at
from node.config import Peer
from node.errors import NodeUnavailable
from node.federation.processor import Delivery, ForwardWithoutCover
from node.federation.routing import DirectoryRouter
from node.store.forwards import ForwardedIn
from node.supervision import escalation
from pki.unit_code import make_unit_code
from tests.node.api.local_api_support import UNIT_A, UNIT_B, UNIT_C, expect_error, meta, send, submission
from tests.node.supervision.test_escalation import audit_actions, get, run, supervised_env


def test_a_recall_after_a_bu_fa_to_the_same_node_reaches_every_unit(tmp_path):
    env, _, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env, doc_meta=meta(cc=[]))
        a = env.auth(env.clerk_a)
        response = await client.post(f"/api/v1/outbox/{doc_id}/recipients", json={"units": [UNIT_C]}, headers=a)
        assert response.status == 200, await response.text()
        response = await client.post(f"/api/v1/outbox/{doc_id}/urge", json={}, headers=a)
        assert response.status == 200, await response.text()
        response = await client.post(f"/api/v1/outbox/{doc_id}/recall", json={}, headers=a)
        assert response.status == 200, await response.text()
        track = await response.json()
        assert {r["unit"]: r["status"] for r in track["recipients"]} == {UNIT_B: "recalled", UNIT_C: "recalled"}
        for token in (env.clerk_b, clerk_c):
            [item] = await get(client, env, token, "/api/v1/inbox")
            assert (item["status"], item["urge_count"]) == ("recalled", 1)
    run(env, scenario)


def test_a_recall_after_escalation_settles_the_du_ban(tmp_path):
    env, clock, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env)
        clock.now = escalation_due_at(dt.datetime.fromisoformat(meta()["deadline"]), WEEKENDS_ONLY, 3)
        await env.service.processor.escalator.sweep()
        [duban] = await get(client, env, clerk_c, "/api/v1/supervision?status=open")
        assert duban["unit"] == UNIT_B
        response = await client.post(f"/api/v1/outbox/{doc_id}/recall", json={"units": [UNIT_B]},
                                     headers=env.auth(env.clerk_a))
        assert response.status == 200, await response.text()
        assert await get(client, env, clerk_c, "/api/v1/supervision?status=open") == []
        [duban] = await get(client, env, clerk_c, "/api/v1/supervision?status=settled")
        assert (duban["settled_as"], duban["settled_by"]) == ("recalled", "张三")
        assert "supervision.settled" in await audit_actions(env, doc_id)
    run(env, scenario)


def test_a_unit_with_no_supervisor_is_not_marked_escalated_until_one_is_named(tmp_path):
    env, clock, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env)  # C (抄送) has no supervisor nor parent
        clock.now = escalation_due_at(dt.datetime.fromisoformat(meta()["deadline"]), WEEKENDS_ONLY, 3)
        sweep = env.service.processor.escalator.sweep
        assert (await sweep())["escalated"] == 1  # B alone
        assert (await sweep())["escalated"] == 0
        [item] = await get(client, env, clerk_c, "/api/v1/inbox")
        assert item["overdue"] is True and item["escalated_at"] is None and item["escalated_to"] is None
        actions = await audit_actions(env, doc_id)
        assert actions.count("inbox.escalated") == 1  # no document.escalated webhook for C
        marks = await env.store.supervision.marks_for([(doc_id, UNIT_C)])
        assert marks[(doc_id, UNIT_C)].escalated_at is None
    run(env, scenario)


def test_a_supervisor_whose_route_is_gone_does_not_stop_the_sign_for_and_hears_of_it_later(tmp_path):
    far = make_unit_code("11371399MB0000009")  # B's supervisor, hosted by a peer node
    env, clock, _ = supervised_env(tmp_path, supervisor=far)
    without = env.config
    env.config = dataclasses.replace(without, peers=(Peer("city-x", "https://127.0.0.1:9", units=(far,)),))
    env.ctx = dataclasses.replace(env.ctx, config=env.config, router=DirectoryRouter(env.config))

    async def scenario(client) -> None:
        doc_id = await send(client, env)
        escalator = env.service.processor.escalator
        clock.now = escalation_due_at(dt.datetime.fromisoformat(meta()["deadline"]), WEEKENDS_ONLY, 3)
        assert (await escalator.sweep())["escalated"] == 1  # B, to city-x
        reachable = escalator.ctx
        escalator.ctx = dataclasses.replace(reachable, router=DirectoryRouter(without))  # the peer is gone
        response = await client.post(f"/api/v1/inbox/{doc_id}/sign-for", headers=env.auth(env.clerk_b))
        assert response.status == 200, await response.text()
        [item] = await get(client, env, env.clerk_b, "/api/v1/inbox")
        assert item["status"] == "signed_for"
        [owed] = await env.store.supervision.owed_settlements()
        assert decode_escalation(owed).settled_as == "signed_for"
        await escalator.sweep()
        assert len(await env.store.supervision.owed_settlements()) == 1  # still no route: it waits
        escalator.ctx = reachable  # the route is back: the settlement goes
        await escalator.sweep()
        assert await env.store.supervision.owed_settlements() == []
        settlements = [decode_escalation(await env.store.blobs.read_bytes(d.payload_digest))
                       for d in await env.store.drafts.drafts_for("city-x")]
        assert [(e.doc_id, e.unit, e.settled_as) for e in settlements if e.settled] == [(doc_id, UNIT_B, "signed_for")]
    run(env, scenario)


async def forward(client, env, token: str, doc_id: str, to: str):
    """B signs for ``doc_id`` and forwards (转发) it to ``to`` with a cover 通知 of its own."""
    await client.post(f"/api/v1/inbox/{doc_id}/sign-for", headers=env.auth(token))
    data, headers = submission(meta(issuers=[UNIT_B], to=[to], cc=[], doc_number=None, title="转发的通知"))
    return await client.post(f"/api/v1/inbox/{doc_id}/forward", data=data, headers={**headers, **env.auth(token)})


def test_a_forwarded_copy_then_the_issuers_own_delivery_of_the_same_document(tmp_path):
    env, _, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env, doc_meta=meta(cc=[]))
        response = await forward(client, env, env.clerk_b, doc_id, UNIT_C)
        assert response.status == 201, await response.text()
        a = env.auth(env.clerk_a)
        response = await client.post(f"/api/v1/outbox/{doc_id}/recipients", json={"units": [UNIT_C]}, headers=a)
        assert response.status == 200, await response.text()
        track = await response.json()
        assert {r["unit"]: r["status"] for r in track["recipients"]} == {UNIT_B: "signed_for", UNIT_C: "delivered"}
        item = next(i for i in await get(client, env, clerk_c, "/api/v1/inbox") if i["doc_id"] == doc_id)
        assert item["from_unit"] == UNIT_A  # the issuer's delivery takes the row over
        response = await client.post(f"/api/v1/outbox/{doc_id}/recall", json={"units": [UNIT_C]}, headers=a)
        assert response.status == 200, await response.text()
        item = next(i for i in await get(client, env, clerk_c, "/api/v1/inbox") if i["doc_id"] == doc_id)
        assert item["status"] == "recalled"
    run(env, scenario)


def test_a_forward_to_a_unit_that_already_holds_the_document_is_taken_as_a_duplicate(tmp_path):
    env, _, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env)  # B and C both receive it from A
        response = await forward(client, env, env.clerk_b, doc_id, UNIT_C)
        assert response.status == 201, await response.text()
        cover = await response.json()
        assert [r["status"] for r in cover["forwarded"]["recipients"]] == ["delivered"]
        item = next(i for i in await get(client, env, clerk_c, "/api/v1/inbox") if i["doc_id"] == doc_id)
        assert (item["from_unit"], item["status"]) == (UNIT_A, "pending")  # still the issuer's row
        response = await client.post(f"/api/v1/outbox/{doc_id}/recall", json={"units": [UNIT_C]},
                                     headers=env.auth(env.clerk_a))
        assert response.status == 200, await response.text()
    run(env, scenario)


def test_a_forwarded_copy_has_its_covers_deadline_not_the_originals(tmp_path):
    env, clock, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env, doc_meta=meta(cc=[]))  # due in two days
        await client.post(f"/api/v1/inbox/{doc_id}/sign-for", headers=env.auth(env.clerk_b))
        data, headers = submission(meta(issuers=[UNIT_B], to=[UNIT_C], cc=[], doc_number=None, deadline=None))
        response = await client.post(f"/api/v1/inbox/{doc_id}/forward", data=data,
                                     headers={**headers, **env.auth(env.clerk_b)})
        assert response.status == 201, await response.text()
        item = next(i for i in await get(client, env, clerk_c, "/api/v1/inbox") if i["doc_id"] == doc_id)
        assert item["deadline"] is None
        clock.now = escalation_due_at(dt.datetime.fromisoformat(meta()["deadline"]), WEEKENDS_ONLY, 3)
        await env.service.processor.escalator.sweep()
        item = next(i for i in await get(client, env, clerk_c, "/api/v1/inbox") if i["doc_id"] == doc_id)
        assert item["overdue"] is False  # the original's 办理时限 was B's, not C's
    run(env, scenario)


def test_a_forward_answering_no_cover_from_its_forwarder_is_refused(tmp_path):
    env, _, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env)  # to B, 抄送 C: one message to this node for both
        original = await env.store.messages.get_inbox(doc_id, UNIT_B)
        processor = env.service.processor
        now = env.ctx.clock()
        nowhere = processor.outbound.header(MessageType.DOCUMENT, env.ctx.node_id, UNIT_B, (UNIT_C,), now).message_id
        # No cover yet: it waits (retried, like a notice ahead of its document); A's message to C is no cover of B's.
        for in_reply_to, refusal in ((nowhere, NodeUnavailable), (original.message_id, ForwardWithoutCover)):
            header = processor.outbound.header(MessageType.FORWARD, env.ctx.node_id, UNIT_B, (UNIT_C,), now,
                                               in_reply_to)
            with pytest.raises(refusal):
                await processor.apply(Delivery(header, original.package_digest, now))
        [held] = await get(client, env, clerk_c, "/api/v1/inbox")
        assert held["from_unit"] == UNIT_A  # C's own copy, untouched
        assert await env.store.forwards.received(doc_id, UNIT_C) is None
    run(env, scenario)


def test_only_a_signed_for_document_is_forwarded(tmp_path):
    env, _, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env, doc_meta=meta(cc=[]))
        data, headers = submission(meta(issuers=[UNIT_B], to=[UNIT_C], cc=[], doc_number=None))
        b = {**headers, **env.auth(env.clerk_b)}
        error = await expect_error(await client.post(f"/api/v1/inbox/{doc_id}/forward", data=data, headers=b),
                                   409, "DOC_NOT_FORWARDABLE")  # 待签收
        assert "签收" in error["message"]
        returned = await send(client, env, doc_meta=meta(cc=[]))
        response = await client.post(f"/api/v1/inbox/{returned}/return", json={"reason": "不属于本单位"},
                                     headers=env.auth(env.clerk_b))
        assert response.status == 200, await response.text()
        await expect_error(await client.post(f"/api/v1/inbox/{returned}/forward", data=data, headers=b),
                           409, "DOC_NOT_FORWARDABLE")  # 已退回
        assert await get(client, env, clerk_c, "/api/v1/inbox") == []  # no cover, no forwarded copy
        for refused in (doc_id, returned):
            assert await env.store.links.links_for(refused, "forward") == []
        assert [d["doc_id"] for d in await get(client, env, env.clerk_b, "/api/v1/outbox")] == []
    run(env, scenario)


def test_a_forwarded_copy_names_as_cover_only_a_document_from_its_forwarder(tmp_path):
    env, _, _ = supervised_env(tmp_path)

    async def scenario(client) -> None:
        doc_id = await send(client, env)  # C holds A's document; its message is not a cover of B's
        message_id = (await env.store.messages.get_inbox(doc_id, UNIT_C)).message_id
        async with env.store.transaction() as tx:
            await env.store.forwards.note_received(tx, ForwardedIn("some-forwarded-doc", UNIT_C, UNIT_B, message_id))
        _, cover = await env.store.forwards.received("some-forwarded-doc", UNIT_C)
        assert cover is None
    run(env, scenario)



def test_the_sweep_reaches_late_rows_behind_a_page_of_rows_that_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(escalation, "SWEEP_BATCH", 2)  # pages of two late rows, not 500
    env, clock, clerk_c = supervised_env(tmp_path)
    deadline = dt.datetime.fromisoformat(meta()["deadline"])

    async def scenario(client) -> None:
        for n in range(3):  # C has no supervisor: its late rows stay unescalated, oldest deadline first
            await send(client, env, doc_meta=meta(to=[UNIT_C], cc=[], doc_number=f"榕政办〔2026〕{n + 20}号",
                                                  deadline=(deadline - dt.timedelta(hours=n + 1)).isoformat()))
        doc_id = await send(client, env, doc_meta=meta(cc=[]))  # B's, the newest deadline
        escalator = env.service.processor.escalator
        clock.now = escalation_due_at(deadline, WEEKENDS_ONLY, 3)
        assert (await escalator.sweep())["escalated"] == 1
        [item] = await get(client, env, env.clerk_b, "/api/v1/inbox")
        assert (item["doc_id"], item["escalated_to"]) == (doc_id, UNIT_C)
    run(env, scenario)


def test_a_settlement_arriving_before_its_escalation_fires_both_events(tmp_path):
    env, _, clerk_c = supervised_env(tmp_path)

    async def scenario(client) -> None:
        escalator, now = env.service.processor.escalator, env.ctx.clock()
        deadline = dt.datetime.fromisoformat(meta()["deadline"])
        settled = Escalation("D-early", UNIT_B, UNIT_C, UNIT_A, "T", deadline, now, 3, now, "李四", "signed_for")
        header = escalator.outbound.header(MessageType.ESCALATE, env.ctx.node_id, UNIT_B, (UNIT_C,), now)
        async with env.store.transaction() as tx:
            await escalator.apply(header, settled.encode(), tx)
        assert await audit_actions(env, "D-early") == ["supervision.escalated", "supervision.settled"]
        events = [adapter_event(env.ctx.node_id, e.seq, e.at, e.action, e.subjects, e.details)
                  for e in await env.store.audit.events(doc_id="D-early", limit=10)]
        assert [(e.type, e.unit, e.data.get("settled_as")) for e in events] == [
            ("document.escalated", UNIT_C, None), ("document.supervision_settled", UNIT_C, "signed_for")]
        [duban] = await get(client, env, clerk_c, "/api/v1/supervision?status=settled")
        assert (duban["settled_by"], duban["settled_as"]) == ("李四", "signed_for")
    run(env, scenario)
