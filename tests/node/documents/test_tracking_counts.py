"""Tracking a 通知 to thousands of units cheaply: the counts by status and the overdue flag, counted
by the store (``recipients=False``, ``GET /api/v1/outbox/{doc_id}?recipients=false``, and the
outbox listing), agree with the slow path that builds every recipient's view — for recipients in
every status, with the deadline passed, not yet passed, or passed with everyone settled."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

from exchange_protocol.ids import new_id
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import SenderStatus
from node.store import OutboxDocument, OutboxRecipient
from pki.unit_code import make_unit_code
from tests.node.documents.service_support import UNITS, County, clerk

RECIPIENTS = [make_unit_code(f"54370000MA{i:07d}") for i in range(3600)]
SETTLED = [SenderStatus.SIGNED_FOR, SenderStatus.RETURNED, SenderStatus.RECALLED]


async def _sent(county: County, deadline: dt.datetime | None, statuses: list[SenderStatus]) -> str:
    """A document the county's first unit sent to 3,600 units, the i-th in statuses[i % len]."""
    now = county.ctx.clock()
    doc_id = new_id(now)
    package = await county.store.blobs.put(b"the package")
    await county.store.messages.add_outbox(
        OutboxDocument(doc_id=doc_id, from_unit=UNITS[0], title="关于冬季防火的通知", kind=Kind.NOTICE,
                       package_digest=package.digest, created_at=now, deadline=deadline),
        [OutboxRecipient(unit=u, role=Role.MAIN if i % 7 else Role.COPY, status=statuses[i % len(statuses)],
                         destination_node=f"town-{i % 150}") for i, u in enumerate(RECIPIENTS)],
        actor="clerk:test")
    return doc_id


def test_counts_by_the_store_agree_with_every_recipient_view(node_dir, tmp_path):
    async def run():
        county = await County.open(node_dir, tmp_path / "county")
        try:
            now = county.ctx.clock()
            passed, coming = now - dt.timedelta(days=1), now + dt.timedelta(days=1)
            docs = [await _sent(county, passed, list(SenderStatus)),   # overdue: some still open
                    await _sent(county, coming, list(SenderStatus)),   # not yet due
                    await _sent(county, passed, SETTLED),              # due, but everyone has answered
                    await _sent(county, None, [SenderStatus.QUEUED])]  # no deadline
            who = clerk(UNITS[0])
            listing = {item["doc_id"]: item for item in await county.service.outbox(who, limit=10)}
            for doc_id in docs:
                slow = await county.service.track(who, doc_id)
                fast = await county.service.track(who, doc_id, recipients=False)
                assert set(fast) == {"doc"}
                assert fast["doc"] == slow["doc"] == listing[doc_id]
                assert sum(fast["doc"]["counts"].values()) == len(RECIPIENTS) == len(slow["recipients"])
            assert [listing[d]["overdue"] for d in docs] == [True, False, False, False]
            every = list(SenderStatus)
            assert listing[docs[0]]["counts"] == dict(Counter(every[i % len(every)].value
                                                              for i in range(len(RECIPIENTS))))
        finally:
            await county.close()
    asyncio.run(run())
