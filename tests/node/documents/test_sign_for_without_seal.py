"""A unit hosted here without a seal still 签收/退回s as before its seal was asked for: its act carries
no unit-signed statement, and the audit trail says so (``evidence: none``); a unit with a seal has
its statement's SHA-256 there instead."""

from __future__ import annotations

import asyncio
import hashlib

from tests.node.documents.service_support import UNITS, County, clerk


def test_a_unit_without_a_seal_signs_for_and_returns_without_a_statement(node_dir, tmp_path):
    async def run():
        county = await County.open(node_dir, tmp_path / "county")
        try:
            sealless = UNITS[:2]
            for unit in sealless:
                county.ctx.seals.pop(unit)  # hosted without a seal credential
            doc_id = await county.delivered(UNITS[:3])
            signed = await county.service.sign_for(clerk(UNITS[0]), doc_id)
            returned = await county.service.return_document(clerk(UNITS[1]), doc_id, "附件缺页")
            sealed = await county.service.sign_for(clerk(UNITS[2]), doc_id)
            assert (signed["status"], returned["status"], sealed["status"]) == ("signed_for", "returned", "signed_for")
            events = {e.subjects.get("unit"): e.details.get("evidence")
                      for e in await county.store.audit.events(doc_id=doc_id)
                      if e.action in ("inbox.signed_for", "inbox.returned")}
            held = {e.unit: e.sha256 for e in await county.store.evidence.notice_evidence(doc_id)}
            assert set(held) == {UNITS[2]}  # only the sealed unit signed a statement
            assert events == {UNITS[0]: "none", UNITS[1]: "none", UNITS[2]: held[UNITS[2]]}
            assert held[UNITS[2]] == hashlib.sha256(
                next(e.statement for e in await county.store.evidence.notice_evidence(doc_id))).hexdigest()
        finally:
            await county.close()
    asyncio.run(run())
