"""node.store.sqlite.messages: outbox and recipient rows, the inbox, compare-and-set, listings."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import ReceiverStatus, SenderStatus
from node.errors import StoreConflict, StoreDuplicate, StoreNotFound
from node.store import InboxRow, ListFilter, OutboxDocument, OutboxRecipient, RecipientUpdate
from tests.node.store.conftest import open_store
from tests.support import FakeClock

U_SEND = "91350100M000100Y43"
U_A = "11100000000013127D"
U_B = "111000000000131358"


async def _send(store, doc_id, kind=Kind.NOTICE, deadline=None, units=(U_A, U_B)):
    package = await store.blobs.put(doc_id.encode() * 100)
    doc = OutboxDocument(doc_id=doc_id, from_unit=U_SEND, title=f"关于{doc_id}的通知", kind=kind,
                         package_digest=package.digest, created_at=store.clock(),
                         doc_number="闽财〔2026〕1号", deadline=deadline)
    recipients = [OutboxRecipient(unit=u, role=Role.MAIN if i == 0 else Role.COPY, status=SenderStatus.QUEUED,
                                  destination_node="node-b") for i, u in enumerate(units)]
    await store.messages.add_outbox(doc, recipients, actor="clerk-1")


def test_recipient_compare_and_set(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            await _send(store, "d-1")
            with pytest.raises(StoreDuplicate):
                await _send(store, "d-1")
            row = await store.messages.update_recipient("d-1", U_A, SenderStatus.QUEUED,
                                                        {"status": SenderStatus.SENT}, actor="node")
            assert row.status == "sent"
            # two clerks' updates based on the same read: one wins, the other must re-read
            results = await asyncio.gather(
                store.messages.update_recipient("d-1", U_A, "sent", {"status": "signed_for", "who": "张三",
                                                                     "when": clock.now}, actor="peer"),
                store.messages.update_recipient("d-1", U_A, "sent", {"status": "recalled"}, actor="clerk-1"),
                return_exceptions=True)
            winners = [r for r in results if not isinstance(r, Exception)]
            losers = [r for r in results if isinstance(r, StoreConflict)]
            assert len(winners) == 1 and len(losers) == 1
            assert losers[0].details["status"] == winners[0].status
            doc = await store.messages.get_outbox("d-1")
            assert {r.unit: r.status for r in doc.recipients} == {U_A: winners[0].status, U_B: "queued"}
            with pytest.raises(StoreNotFound):
                await store.messages.update_recipient("d-1", "91350100M000100Y43", "queued", {}, actor="x")
            history = [(e.action, e.subjects.get("unit")) for e in await store.audit.events(doc_id="d-1")]
            assert history == [("outbox.create", U_SEND), ("recipient.sent", U_A),
                               (f"recipient.{winners[0].status}", U_A)]
    asyncio.run(main())


def test_recipients_of_one_document_move_together_each_compared_and_audited(tmp_path):
    """A batch of 签收 from one node: every row moves with its own audit event (the per-unit history as
    one at a time writes it); a row that moved meanwhile fails the batch as StoreConflict."""
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            await _send(store, "d-1")
            signed = {"status": "signed_for", "who": "张三", "when": clock.now}
            async with store.transaction() as tx:
                assert set(await store.messages.get_outbox_recipients("d-1", [U_A, U_B, U_SEND], tx=tx)) == {U_A, U_B}
                await store.messages.update_recipients("d-1", [
                    RecipientUpdate(U_A, "queued", signed, "recipient.signed_for", {"message_id": "m-1"}),
                    RecipientUpdate(U_B, "queued", signed | {"who": "李四"}, "recipient.signed_for")], actor="node:b", tx=tx)
            doc = await store.messages.get_outbox("d-1")
            assert {r.unit: (r.status, r.who) for r in doc.recipients} == {U_A: ("signed_for", "张三"),
                                                                           U_B: ("signed_for", "李四")}
            events = [e for e in await store.audit.events(doc_id="d-1") if e.action == "recipient.signed_for"]
            assert [(e.subjects["unit"], e.actor, e.details["from"], e.details["who"]) for e in events] == \
                [(U_A, "node:b", "queued", "张三"), (U_B, "node:b", "queued", "李四")]
            assert events[0].details["message_id"] == "m-1"
            with pytest.raises(StoreConflict):  # U_B is no longer queued: the batch's transaction is undone
                async with store.transaction() as tx:
                    await store.messages.update_recipients("d-1", [
                        RecipientUpdate(U_A, "signed_for", {"status": "recalled"}, "recipient.recalled"),
                        RecipientUpdate(U_B, "queued", {"status": "recalled"}, "recipient.recalled")],
                        actor="clerk-1", tx=tx)
            assert {r.status for r in (await store.messages.get_outbox("d-1")).recipients} == {"signed_for"}
            assert len(await store.audit.events(doc_id="d-1")) == 3
    asyncio.run(main())


def test_outbox_listing_filters_and_keyset_paging(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            for i in range(5):
                await _send(store, f"d-{i}", kind=Kind.LETTER if i % 2 else Kind.NOTICE,
                            deadline=clock.now + timedelta(days=1 if i < 3 else 10))
            await store.messages.update_recipient("d-0", U_A, "queued", {"status": "signed_for", "who": "李四"},
                                                  actor="peer")
            await store.messages.update_recipient("d-0", U_B, "queued", {"status": "returned", "reason": "非本单位"},
                                                  actor="peer")
            page1 = await store.messages.list_outbox(ListFilter(limit=2))
            page2 = await store.messages.list_outbox(ListFilter(limit=2, before_id=page1.next_before_id))
            page3 = await store.messages.list_outbox(ListFilter(limit=2, before_id=page2.next_before_id))
            assert [d.doc_id for p in (page1, page2, page3) for d in p.items] == [f"d-{i}" for i in (4, 3, 2, 1, 0)]
            assert page3.next_before_id is None
            letters = await store.messages.list_outbox(ListFilter(kind=Kind.LETTER))
            assert [d.doc_id for d in letters.items] == ["d-3", "d-1"]
            returned = await store.messages.list_outbox(ListFilter(status=SenderStatus.RETURNED))
            assert [d.doc_id for d in returned.items] == ["d-0"]
            clock.advance(days=2)
            overdue = await store.messages.list_outbox(ListFilter(overdue=True, unit=U_SEND))
            # d-0 is past its deadline but settled (签收 and 退回): no red light
            assert [d.doc_id for d in overdue.items] == ["d-2", "d-1"]
            assert await store.messages.list_outbox(ListFilter(unit=U_A)) == type(page1)([], None)
    asyncio.run(main())


def _inbox_row(store, doc_id, unit, **kw):
    return InboxRow(doc_id=doc_id, unit=unit, role=Role.MAIN, from_unit=U_SEND, title="关于开展检查的通知",
                    kind=kw.pop("kind", Kind.NOTICE), status=ReceiverStatus.PENDING, package_digest=kw.pop("digest"),
                    received_at=store.clock(), message_id=f"msg-{doc_id}", **kw)


def test_inbox_add_idempotent_cas_and_filters(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            digest = (await store.blobs.put(b"package")).digest
            report = {"seal": "ok", "signer": "某某市财政局"}
            assert await store.messages.add_inbox(_inbox_row(store, "d-1", U_A, digest=digest, verification=report,
                                                             deadline=clock.now + timedelta(days=1)))
            assert not await store.messages.add_inbox(_inbox_row(store, "d-1", U_A, digest=digest))
            assert await store.messages.add_inbox(_inbox_row(store, "d-2", U_A, digest=digest, kind=Kind.REQUEST))
            assert await store.messages.add_inbox(_inbox_row(store, "d-1", U_B, digest=digest,
                                                             deadline=clock.now + timedelta(days=1)))
            row = await store.messages.update_inbox("d-1", U_A, ReceiverStatus.PENDING,
                                                    {"status": ReceiverStatus.SIGNED_FOR, "signed_by": "王五",
                                                     "signed_at": clock.now}, actor="clerk-a")
            assert (row.status, row.signed_by, row.signed_at, row.verification) == ("signed_for", "王五",
                                                                                    clock.now, report)
            with pytest.raises(StoreConflict):
                await store.messages.update_inbox("d-1", U_A, "pending", {"status": "returned",
                                                                          "return_reason": "x"}, actor="clerk-a")
            mine = await store.messages.list_inbox(ListFilter(unit=U_A))
            assert [r.doc_id for r in mine.items] == ["d-2", "d-1"]
            pending = await store.messages.list_inbox(ListFilter(unit=U_A, status="pending"))
            assert [r.doc_id for r in pending.items] == ["d-2"]
            requests = await store.messages.list_inbox(ListFilter(kind="请示"))
            assert [r.doc_id for r in requests.items] == ["d-2"]
            clock.advance(days=2)
            overdue = await store.messages.list_inbox(ListFilter(overdue=True))
            assert [(r.doc_id, r.unit) for r in overdue.items] == [("d-1", U_B)]
    asyncio.run(main())


def test_counterpart_filters_page_in_sql(tmp_path):
    """Filtering by the other unit happens before the limit: a page is never short while more match."""
    async def main():
        async with open_store(tmp_path, FakeClock()) as store:
            for i in range(6):
                await _send(store, f"d-{i}", units=(U_A,) if i % 2 else (U_B,))
            to_a = await store.messages.list_outbox(ListFilter(counterpart=U_A, limit=2))
            assert [d.doc_id for d in to_a.items] == ["d-5", "d-3"] and to_a.next_before_id is not None
            rest = await store.messages.list_outbox(ListFilter(counterpart=U_A, limit=2, before_id=to_a.next_before_id))
            assert [d.doc_id for d in rest.items] == ["d-1"] and rest.next_before_id is None
            digest = (await store.blobs.put(b"package")).digest
            await store.messages.add_inbox(_inbox_row(store, "in-1", U_A, digest=digest))
            await store.messages.add_inbox(replace(_inbox_row(store, "in-2", U_A, digest=digest), from_unit=U_B))
            from_b = await store.messages.list_inbox(ListFilter(counterpart=U_B, limit=1))
            assert [r.doc_id for r in from_b.items] == ["in-2"] and from_b.next_before_id is None
    asyncio.run(main())
