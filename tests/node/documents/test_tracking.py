"""node.documents.tracking over a real store: a row another writer keeps changing under every
compare-and-set retry is a transient error (STORE_CONTENDED: busy, try again — 503, exit 4, retried
by the sender and the processor), not a conflict the caller must resolve (409, given up on); a
message's transport outcome moves the rows of all its units in one read and one write."""

from __future__ import annotations

import asyncio

import pytest

from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import Event, ReceiverStatus, SenderStatus
from node.documents.tracking import (
    ATTEMPTS,
    apply_receiver_event,
    apply_sender_event,
    apply_transport_outcome,
)
from node.error_kinds import Disposition, disposition, http_status_for
from node.errors import StoreContended, StoreNotFound
from node.store import InboxRow, OutboxDocument, OutboxRecipient, OutgoingLink
from pki.unit_code import make_unit_code
from tests.node.store.conftest import open_store

U_SEND, U_A = "91350100M000100Y43", "11100000000013127D"


def _always_stale(store, method: str):
    """Reads as they were before the other writer's changes: that writer always gets there first."""
    real = getattr(store.messages, method)
    first: dict = {}
    reads = []

    async def stale(*args, tx=None):
        reads.append(args)
        if args not in first:
            first[args] = await real(*args, tx=tx)
        return first[args]
    setattr(store.messages, method, stale)
    return reads


def test_a_sender_row_that_keeps_changing_is_contended_not_a_conflict(tmp_path):
    async def run():
        async with open_store(tmp_path) as store:
            package = await store.blobs.put(b"package")
            doc = OutboxDocument(doc_id="d-1", from_unit=U_SEND, title="关于检查的通知", kind=Kind.NOTICE,
                                 package_digest=package.digest, created_at=store.clock())
            await store.messages.add_outbox(doc, [OutboxRecipient(unit=U_A, role=Role.MAIN, status=SenderStatus.QUEUED,
                                                                  destination_node="node-b")], actor="clerk-1")
            reads = _always_stale(store, "get_outbox_recipient")
            await store.messages.get_outbox_recipient("d-1", U_A)  # our snapshot: queued
            await store.messages.update_recipient("d-1", U_A, SenderStatus.QUEUED, {"status": "sent"},
                                                  actor="node:node-b")  # the other writer
            with pytest.raises(StoreContended) as info:
                await apply_sender_event(store, "d-1", U_A, Event.SENT, at=store.clock(), actor="node:node-b")
            assert len(reads) == 1 + ATTEMPTS
            _is_transient(info.value)

    asyncio.run(run())


def test_a_recipient_event_reads_that_recipient_not_the_whole_list(tmp_path):
    """A 通知 to 3,600 units gets 3,600 送达 and 3,600 签收 back: each reads its own row. Reading the
    document's whole recipient list for each made the sender's work grow with the square of the
    recipients (13 M rows read per event kind; bench/network.py's city spent 40 % of its CPU there)."""
    async def run():
        async with open_store(tmp_path) as store:
            package = await store.blobs.put(b"package")
            units = [make_unit_code(f"11100000MB{i:07d}") for i in range(200)]
            doc = OutboxDocument(doc_id="d-1", from_unit=U_SEND, title="关于检查的通知", kind=Kind.NOTICE,
                                 package_digest=package.digest, created_at=store.clock())
            await store.messages.add_outbox(doc, [OutboxRecipient(unit=u, role=Role.MAIN, status=SenderStatus.QUEUED,
                                                                  destination_node="node-b") for u in units],
                                            actor="clerk-1")
            whole_lists = []
            real = store.messages.get_outbox

            async def counted(doc_id):
                whole_lists.append(doc_id)
                return await real(doc_id)
            store.messages.get_outbox = counted
            for unit in units:
                await apply_sender_event(store, "d-1", unit, Event.SENT, at=store.clock(), actor="node:node-b")
            assert whole_lists == []
            store.messages.get_outbox = real
            assert {r.status for r in (await store.messages.get_outbox("d-1")).recipients} == {"sent"}
            with pytest.raises(StoreNotFound):
                await apply_sender_event(store, "d-1", U_A, Event.SENT, at=store.clock(), actor="node:node-b")

    asyncio.run(run())


def test_an_inbox_row_that_keeps_changing_is_contended_not_a_conflict(tmp_path):
    async def run():
        async with open_store(tmp_path) as store:
            package = await store.blobs.put(b"package")
            await store.messages.add_inbox(InboxRow(
                doc_id="d-1", unit=U_A, role=Role.MAIN, from_unit=U_SEND, title="关于检查的通知", kind=Kind.NOTICE,
                status=ReceiverStatus.PENDING, package_digest=package.digest, received_at=store.clock(),
                message_id="msg-d-1"))
            _always_stale(store, "get_inbox")
            await store.messages.get_inbox("d-1", U_A)  # our snapshot: pending
            await store.messages.update_inbox("d-1", U_A, ReceiverStatus.PENDING, {"status": ReceiverStatus.SIGNED_FOR.value},
                                              actor="clerk-2")  # the other writer
            with pytest.raises(StoreContended) as info:
                await apply_receiver_event(store, "d-1", U_A, Event.SIGNED_FOR, at=store.clock(), actor="clerk-1",
                                           by="张三")
            _is_transient(info.value)

    asyncio.run(run())


def _is_transient(error: StoreContended) -> None:
    assert error.code == "STORE_CONTENDED"
    assert disposition(error) is Disposition.RETRY and http_status_for(error) == 503


def _recipient_calls(store) -> list[tuple[str, list[str]]]:
    """The recipient rows ``store``'s messages read and write from now on, one entry a call (each one
    statement): ("read", units) and ("write", units) for several, ("read one" | "write one", [unit])."""
    calls: list[tuple[str, list[str]]] = []
    m = store.messages
    reads, writes, read_one, write_one = (m.get_outbox_recipients, m.update_recipients, m.get_outbox_recipient,
                                          m.update_recipient)

    async def get_outbox_recipients(doc_id, units, **kw):
        calls.append(("read", sorted(units)))
        return await reads(doc_id, units, **kw)

    async def update_recipients(doc_id, updates, **kw):
        calls.append(("write", sorted(u.unit for u in updates)))
        return await writes(doc_id, updates, **kw)

    async def get_outbox_recipient(doc_id, unit, **kw):
        calls.append(("read one", [unit]))
        return await read_one(doc_id, unit, **kw)

    async def update_recipient(doc_id, unit, *args, **kw):
        calls.append(("write one", [unit]))
        return await write_one(doc_id, unit, *args, **kw)

    m.get_outbox_recipients, m.update_recipients = get_outbox_recipients, update_recipients
    m.get_outbox_recipient, m.update_recipient = get_outbox_recipient, update_recipient
    return calls


def test_a_fan_out_message_acknowledged_moves_its_units_rows_together_each_with_its_own_event(tmp_path):
    """The city's message to a county names hundreds of units: its receipt moves their rows in one read
    and one write (not two statements a unit), each unit with its own ``recipient.sent`` event naming
    the message, as ``gwx track`` shows it; a unit sent on by another message meanwhile is left out, a
    unit without a row is only logged (the others still move), and the same receipt again writes nothing."""
    async def run():
        async with open_store(tmp_path) as store:
            package = await store.blobs.put(b"package")
            units = [make_unit_code(f"11100000MB{i:07d}") for i in range(6)]
            stray = make_unit_code("11100000MB9999999")  # named by the message, no row here
            doc = OutboxDocument(doc_id="d-1", from_unit=U_SEND, title="关于检查的通知", kind=Kind.NOTICE,
                                 package_digest=package.digest, created_at=store.clock())
            await store.messages.add_outbox(doc, [OutboxRecipient(unit=u, role=Role.MAIN, status=SenderStatus.QUEUED,
                                                                  destination_node="county") for u in units],
                                            actor="clerk-1")
            async with store.transaction() as tx:
                await store.links.add_links(tx, [OutgoingLink("m-1", "d-1", "document", "county",
                                                              (*units, stray), store.clock())])
            calls = _recipient_calls(store)
            async with store.transaction() as tx:
                await apply_transport_outcome(store, "m-1", Event.SENT, at=store.clock(), actor="node:county", tx=tx,
                                              except_units={units[5]})
            assert calls == [("read", sorted([*units[:5], stray])), ("write", sorted(units[:5]))]
            rows = {r.unit: r.status for r in (await store.messages.get_outbox("d-1")).recipients}
            assert rows == {**{u: "sent" for u in units[:5]}, units[5]: "queued"}
            sent = [e for e in await store.audit.events(doc_id="d-1") if e.action == "recipient.sent"]
            assert sorted(e.subjects["unit"] for e in sent) == sorted(units[:5])
            assert {e.details["message_id"] for e in sent} == {"m-1"} and {e.details["from"] for e in sent} == {"queued"}

            calls.clear()
            async with store.transaction() as tx:
                await apply_transport_outcome(store, "m-1", Event.SENT, at=store.clock(), actor="node:county", tx=tx)
            assert calls == [("read", sorted([*units, stray])), ("write", [units[5]])]
            assert len([e for e in await store.audit.events(doc_id="d-1") if e.action == "recipient.sent"]) == 6

    asyncio.run(run())
