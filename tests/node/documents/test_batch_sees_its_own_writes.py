"""Clerk actions committed in one batch see what the actions before them in that batch wrote.

Each action of a group commit runs in a savepoint of the batch's transaction; it must read the rows
it decides on through that transaction. Read from the last committed state instead, a 催办 counted
before it is counted again from zero (three 催办 → urge_count 1), a 签收 after a local 催办 writes
the count back to 0, and a 登记 after its 签收 is refused as if the document were still pending.
Each test holds the writer while the actions queue up, so they are sure to share one batch.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest

from exchange_protocol.envelope import MessageType
from exchange_protocol.ids import new_id
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import ReceiverStatus, SenderStatus
from node.store import InboxRow, OutboxDocument, OutboxRecipient, OutgoingLink
from tests.node.documents.service_support import SENDER, UNITS, County, clerk


@asynccontextmanager
async def one_batch(county: County):
    """Holds the writer with a work of its own while the body starts actions; they form one batch."""
    gate = asyncio.Event()

    async def hold(tx):
        await gate.wait()
    held = asyncio.ensure_future(county.store.write_together(hold))
    await asyncio.sleep(0.05)
    batches = county.store.committer.batches
    yield
    await asyncio.sleep(0.1)  # every action has read what it reads before the batch and is queued
    gate.set()
    await held
    county.batches_used = county.store.committer.batches - batches  # the actions' batch has begun

    async def nothing(tx):
        return None
    await county.store.write_together(nothing)  # committed after the actions' batch: it is done


async def queued(county: County, first: asyncio.Future, timeout: float = 30.0) -> None:
    """Until ``first`` (an action started while :func:`one_batch` holds the writer) waits in the writer's
    queue — so that an action started after it is applied after it, however long its reads took on a
    loaded machine (a fixed pause was not always enough)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while county.store.committer._requests.qsize() < 1:
        assert not first.done(), first
        assert asyncio.get_running_loop().time() < deadline, "the first action never reached the writer"
        await asyncio.sleep(0.005)


async def _sent(county: County, sender: str, unit: str, node: str) -> str:
    """A document ``sender`` sent to ``unit`` on ``node``, delivered; with this node's inbox row when
    ``node`` is this node (a local delivery). Returns its doc id."""
    now = county.ctx.clock()
    doc_id, message_id = new_id(now), new_id(now)
    package = await county.store.blobs.put(b"the package")
    async with county.store.transaction() as tx:
        await county.store.messages.add_outbox(
            OutboxDocument(doc_id=doc_id, from_unit=sender, title="关于冬季防火的通知", kind=Kind.NOTICE,
                           package_digest=package.digest, created_at=now),
            [OutboxRecipient(unit=unit, role=Role.MAIN, status=SenderStatus.DELIVERED, destination_node=node)],
            actor=f"clerk:{sender}", tx=tx)
        await county.store.links.add_links(tx, [OutgoingLink(message_id, doc_id, MessageType.DOCUMENT.value, node,
                                                             (unit,), now)])
    if node == county.ctx.node_id:
        await county.store.messages.add_inbox(InboxRow(
            doc_id=doc_id, unit=unit, role=Role.MAIN.value, from_unit=sender, title="关于冬季防火的通知",
            kind=Kind.NOTICE.value, status=ReceiverStatus.PENDING.value, package_digest=package.digest,
            received_at=now, message_id=message_id), actor=f"node:{node}")
    return doc_id


def test_three_urges_at_once_of_one_recipient_count_three(node_dir, tmp_path):
    async def run():
        county = await County.open(node_dir, tmp_path / "county")
        try:
            doc_id = await _sent(county, UNITS[0], SENDER, "city")
            async with one_batch(county):
                urges = [asyncio.ensure_future(county.service.urge(clerk(UNITS[0]), doc_id)) for _ in range(3)]
            await asyncio.gather(*urges)
            assert county.batches_used == 1
            row = await county.store.messages.get_outbox_recipient(doc_id, SENDER)
            assert row.urge_count == 3
            assert len(await county.store.drafts.drafts_for("city")) == 3
            assert await county.store.audit.verify_chain() > 0
        finally:
            await county.close()
    asyncio.run(run())


def test_a_sign_for_after_a_local_urge_in_one_batch_keeps_the_urge(node_dir, tmp_path):
    async def run():
        county = await County.open(node_dir, tmp_path / "county")
        try:
            doc_id = await _sent(county, UNITS[0], UNITS[1], "county")
            async with one_batch(county):
                urge = asyncio.ensure_future(county.service.urge(clerk(UNITS[0]), doc_id))
                await queued(county, urge)
                sign = asyncio.ensure_future(county.service.sign_for(clerk(UNITS[1]), doc_id))
            await asyncio.gather(urge, sign)
            assert county.batches_used == 1
            row = await county.store.messages.get_inbox(doc_id, UNITS[1])
            assert (row.status, row.urge_count) == ("signed_for", 1)
            assert row.last_urged_at is not None
        finally:
            await county.close()
    asyncio.run(run())


def test_a_register_after_its_sign_for_in_one_batch_is_done(node_dir, tmp_path):
    async def run():
        county = await County.open(node_dir, tmp_path / "county")
        try:
            doc_id = await county.delivered(UNITS[:1])
            async with one_batch(county):
                sign = asyncio.ensure_future(county.service.sign_for(clerk(UNITS[0]), doc_id))
                await queued(county, sign)
                register = asyncio.ensure_future(county.service.register(clerk(UNITS[0]), doc_id))
            signed, registered = await asyncio.gather(sign, register)
            assert county.batches_used == 1
            assert registered["status"] == "registered"
            assert (await county.store.messages.get_inbox(doc_id, UNITS[0])).status == "registered"
        finally:
            await county.close()
    asyncio.run(run())


def test_a_sign_for_whose_caller_gave_up_still_wakes_the_queue_of_its_notice(node_dir, tmp_path):
    """The clerk's request is cancelled (the browser closed) while its 签收 waits in a batch: the
    签收 commits all the same, and so its notice must not sleep in its draft until some other wake
    or a restart — the queue to the city is woken once the batch has committed."""
    async def run():
        county = await County.open(node_dir, tmp_path / "county")
        try:
            doc_id = await county.delivered(UNITS[:1])
            async with one_batch(county):
                sign = asyncio.ensure_future(county.service.sign_for(clerk(UNITS[0]), doc_id))
                await asyncio.sleep(0.05)
                sign.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sign
            assert (await county.store.messages.get_inbox(doc_id, UNITS[0])).status == "signed_for"
            assert len(await county.store.drafts.drafts_for("city")) == 1
            city = county.outbound.queues.get("city")
            assert city is not None and city._wakeup.is_set(), "the notice's queue was never woken"
        finally:
            await county.close()
    asyncio.run(run())
