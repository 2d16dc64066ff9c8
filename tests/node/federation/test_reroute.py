"""The rerouter's pass over a real store (the county's): what it reads, and what it notes for later.

A unit the node "old-node" hosted is now the city's (the county's static peers say so; the rows
below name old-node, as envelopes sealed before the move would). A pass takes back the envelope of
it that waits and notes the one in flight and the one an operator holds — all read at one instant
— and its reads do not grow with the rest of the queue: envelopes for nodes whose units did not
move cost it one row each of one statement, and no read of its own each (before session 27 a pass
read the whole queue once more after its moves, paged, and each of our documents' link again).
The scenes with real nodes, a directory installed and documents arriving at the new node:
tests/node/network/test_reroute.py."""

from __future__ import annotations

import asyncio

from exchange_protocol.ids import new_id
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import SenderStatus
from node.federation.reroute import Rerouter
from node.store import OutboundItem, OutboxDocument, OutboxRecipient, OutgoingLink
from tests.node.federation import processing_support
from tests.node.federation.processing_support import SENDER, A, close_processor, open_processor

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)


class _Reads:
    """The statements a store's database answers a task outside transactions, and the rows it returns
    (the other tasks' — a destination's loop a move wakes — not counted)."""

    def __init__(self, db) -> None:
        self.statements = self.rows = 0
        self.task: asyncio.Task | None = None
        for name in ("fetchall", "lookup"):
            read = getattr(db, name)

            async def counted(sql, params=(), read=read):
                found = await read(sql, params)
                if asyncio.current_task() is self.task:
                    self.statements += 1
                    self.rows += len(found)
                return found
            setattr(db, name, counted)

    async def of(self, work):
        self.task = asyncio.current_task()
        return await work


async def _queued(store, now, destination: str, count: int, package, *, ours: bool = True) -> list[str]:
    """``count`` documents for ``destination``'s SENDER, sealed and waiting in the queue: ours, or
    relayed for another node (no link of ours)."""
    ids = [new_id(now) for _ in range(count)]
    # Each its own envelope (a frame shares its blob: rows of one blob and destination go out together).
    envelopes = [await store.blobs.put(f"an envelope for {destination} ({m})".encode()) if destination == "old-node"
                 else package for m in ids]
    await store.queue.enqueue_many([OutboundItem(m, destination, e.digest, e.size, "document")
                                    for m, e in zip(ids, envelopes, strict=True)])
    if not ours:
        return ids
    async with store.transaction() as tx:
        await store.links.add_links(tx, [OutgoingLink(m, f"doc-{m}", "document", destination, (SENDER,), now)
                                         for m in ids])
    for m in ids if destination == "old-node" else ():  # what a move reads: the document and its recipient
        await store.messages.add_outbox(
            OutboxDocument(doc_id=f"doc-{m}", from_unit=A, title="关于测试的通知", kind=Kind.NOTICE,
                           package_digest=package.digest, created_at=now),
            [OutboxRecipient(unit=SENDER, role=Role.MAIN, status=SenderStatus.QUEUED, destination_node=destination)],
            actor="clerk-1")
    return ids


def _pass(node_dir, tmp_path, others: int) -> tuple[set[str], list[str], _Reads, object]:
    """One pass over a queue of twice ``others`` envelopes for the city (nothing moves: ours and relayed
    ones, eight of them in flight) and three for old-node (its unit moved to the city): one in flight,
    one held, one waiting."""
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            package = await store.blobs.put(b"the document's package, as the outbox keeps it")
            await _queued(store, now, "city", others, package)  # ours, waiting
            await _queued(store, now, "city", others, package, ours=False)  # relayed
            await store.queue.load_active_window("city", 8)  # a window in flight
            [in_flight] = await _queued(store, now, "old-node", 1, package)
            await store.queue.load_active_window("old-node", 1)  # claimed for a send to old-node
            held, waiting = await _queued(store, now, "old-node", 2, package)
            await store.queue.hold(held, actor="operator", reason="looked at first")
            reads = _Reads(store.db)
            left = await asyncio.create_task(reads.of(Rerouter(outbound).reroute_once()))
            states = [(await store.queue.get(m)) for m in (in_flight, held, waiting)]
            drafts = await store.drafts.draft_destinations()
            return left, [s.state if s else None for s in states], reads, (drafts, in_flight, held)
        finally:
            await close_processor(store, outbound)
    return asyncio.run(run())


def test_a_pass_takes_back_what_waits_notes_what_does_not_and_reads_no_more_for_a_longer_queue(node_dir, tmp_path):
    left, states, reads, (drafts, in_flight, held) = _pass(node_dir, tmp_path / "short", 10)
    # The waiting envelope is withdrawn and drafted again for the city; the one in flight and the held
    # one stay where they are, noted: the watch takes them back once they wait again.
    assert states == ["active", "hold", None]
    assert drafts == ["city"]
    assert left == {in_flight, held}

    longer = _pass(node_dir, tmp_path / "long", 1_000)  # 2,000 more rows
    assert longer[1] == ["active", "hold", None] and len(longer[0]) == 2
    print(f"a pass: {reads.statements} statements, {reads.rows} rows beside 20 envelopes for the city;"
          f" {longer[2].statements} statements, {longer[2].rows} rows beside 2,000")
    assert longer[2].statements == reads.statements, "a pass's reads grow with envelopes that need no move"
    assert longer[2].rows - reads.rows <= 1_000 - 10  # one row each of ours, in the one read of the queued documents
