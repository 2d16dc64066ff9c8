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
from node.errors import StoreContended
from node.store import InboxRow, OutboxDocument, OutboxRecipient
from tests.node.store.conftest import open_store

U_SEND, U_A = "91350100M000100Y43", "11100000000013127D"


def _always_stale(store, method: str):
    """Reads as they were before the other writer's changes: that writer always gets there first."""
    real = getattr(store.messages, method)
    first: dict = {}
    reads = []

    async def stale(*args):
        reads.append(args)
        if args not in first:
            first[args] = await real(*args)
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
            reads = _always_stale(store, "get_outbox")
            await store.messages.get_outbox("d-1")  # our snapshot: queued
            await store.messages.update_recipient("d-1", U_A, SenderStatus.QUEUED, {"status": "sent"},
                                                  actor="node:node-b")  # the other writer
            with pytest.raises(StoreContended) as info:
                await apply_sender_event(store, "d-1", U_A, Event.SENT, at=store.clock(), actor="node:node-b")
            assert len(reads) == 1 + ATTEMPTS
            _is_transient(info.value)

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
