"""签收/退回 statements kept by the store (migration 14): read back byte for byte, per document, once per side."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

from node.store.evidence import NoticeEvidence
from tests.node.store.conftest import open_store

DOC = "0193a5b2-0000-7000-8000-000000000001"
AT = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


def _item(unit: str, side: str, statement: bytes, at: dt.datetime = AT, doc_id: str = DOC) -> NoticeEvidence:
    return NoticeEvidence(doc_id, unit, "receipt", side, at, statement, hashlib.sha256(statement).hexdigest())


def test_statements_are_kept_per_document_in_time_order_and_once_per_side(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            later = _item("11100000000013127D", "sender", b"\x30\x01b", AT + dt.timedelta(minutes=1))
            first = _item("91350100M000100Y43", "receiver", b"\x30\x01a")
            async with store.transaction() as tx:
                await store.evidence.add(tx, [later, first, _item("91350100M000100Y43", "sender", b"\x30\x01a")])
                await store.evidence.add(tx, [first])  # the same statement again on the same side: kept once
                await store.evidence.add(tx, [_item("91350100M000100Y43", "receiver", b"\x30\x01c",
                                                    doc_id="0193a5b2-0000-7000-8000-000000000002")])
            held = await store.evidence.notice_evidence(DOC)
            assert [(e.unit, e.side, e.statement) for e in held] == [
                ("91350100M000100Y43", "receiver", b"\x30\x01a"), ("91350100M000100Y43", "sender", b"\x30\x01a"),
                ("11100000000013127D", "sender", b"\x30\x01b")]
            assert held[0].at == AT and held[0].recorded_at is not None
            assert await store.evidence.notice_evidence("0193a5b2-0000-7000-8000-000000000009") == []
    asyncio.run(main())


def test_a_rolled_back_transaction_keeps_no_statement(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            try:
                async with store.transaction() as tx:
                    await store.evidence.add(tx, [_item("91350100M000100Y43", "receiver", b"\x30\x01a")])
                    raise RuntimeError("the 签收 failed")
            except RuntimeError:
                pass
            assert await store.evidence.notice_evidence(DOC) == []
    asyncio.run(main())
