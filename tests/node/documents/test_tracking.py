"""node.documents.tracking over a real store: a row another writer keeps changing under every
compare-and-set retry is a transient error (STORE_CONTENDED: busy, try again — 503, exit 4, retried
by the sender and the processor), not a conflict the caller must resolve (409, given up on)."""

from __future__ import annotations

import asyncio

import pytest

from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import Event, ReceiverStatus, SenderStatus
from node.documents.tracking import ATTEMPTS, apply_receiver_event, apply_sender_event
from node.error_kinds import Disposition, disposition, http_status_for
from node.errors import StoreContended, StoreNotFound
from node.store import InboxRow, OutboxDocument, OutboxRecipient
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
