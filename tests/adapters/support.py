"""Helpers of the adapter tests: real state changes in a real store (so the audit log says what a
running node's would), and a consumer that records what it was given."""

from __future__ import annotations

import os
from collections.abc import Callable

from adapters.events import AdapterEvent
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import ReceiverStatus, SenderStatus
from node.store import InboxRow, OutboxDocument, OutboxRecipient
from pki.errors import GwxError

U_SEND = "91350100M000100Y43"
U_A = "11100000000013127D"
U_B = "111000000000131358"


async def receive(store, doc_id: str, unit: str = U_A, title: str = "关于开展冬季安全检查的通知") -> None:
    """A document arrives in ``unit``'s inbox (audit: inbox.add)."""
    ref = await store.blobs.put(doc_id.encode() + os.urandom(64))
    await store.messages.add_inbox(InboxRow(
        doc_id=doc_id, unit=unit, role=Role.MAIN, from_unit=U_SEND, title=title, kind=Kind.NOTICE,
        status=ReceiverStatus.PENDING, package_digest=ref.digest, received_at=store.clock(),
        message_id=f"msg-{doc_id}"))


async def send(store, doc_id: str, to: tuple[str, ...] = (U_A, U_B), title: str = "关于报送年度统计数据的通知") -> None:
    """``U_SEND`` sends a document (audit: outbox.create; no adapter event)."""
    ref = await store.blobs.put(doc_id.encode() + os.urandom(64))
    doc = OutboxDocument(doc_id=doc_id, from_unit=U_SEND, title=title, kind=Kind.NOTICE,
                         package_digest=ref.digest, created_at=store.clock())
    await store.messages.add_outbox(doc, [OutboxRecipient(unit=u, role=Role.MAIN, status=SenderStatus.DELIVERED,
                                                          destination_node="node-b") for u in to], actor="clerk")


async def signed_for(store, doc_id: str, unit: str, by: str = "张三") -> None:
    """A recipient signed for what ``U_SEND`` sent (audit: recipient.signed_for)."""
    await store.messages.update_recipient(doc_id, unit, SenderStatus.DELIVERED,
                                          {"status": SenderStatus.SIGNED_FOR, "who": by, "when": store.clock()},
                                          actor="node", action="recipient.signed_for")


class Recorder:
    """A consumer that records every event delivered, optionally failing first."""

    def __init__(self, name: str = "test:recorder", wants: Callable[[AdapterEvent], bool] = lambda e: True,
                 fail: Callable[[AdapterEvent], GwxError | None] = lambda e: None) -> None:
        self.name = name
        self._wants = wants
        self.fail = fail
        self.delivered: list[AdapterEvent] = []
        self.attempts = 0

    def wants(self, event: AdapterEvent) -> bool:
        return self._wants(event)

    async def deliver(self, event: AdapterEvent) -> None:
        self.attempts += 1
        error = self.fail(event)
        if error is not None:
            raise error
        self.delivered.append(event)
