"""A notice drafted by a gwx from before migration 11 (its payload in a blob of its own, not in its
draft row) survives the upgrade: garbage collection keeps its blob (``blob_refs``: drafts whose
payload IS NULL) and the envelope builder reads the notice from that blob, to be sent."""

from __future__ import annotations

import asyncio
import datetime as dt

from exchange_protocol.canonical import canonical_json
from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.notices import Notice
from node.federation.envelope_builder import _read_notices
from node.store.blobs import BlobStore
from node.store.opener import open_store
from node.store.sqlite.db import Database, to_db_time
from node.store.sqlite.migrations import MIGRATIONS, migrate
from node.store.sqlite.store import BLOB_DIR, DB_NAME
from pki.unit_code import make_unit_code
from tests.support import T0

SIGNER = make_unit_code("54371302MA0002000")
SENDER = make_unit_code("11371300MB0000071")


def test_a_receipt_drafted_in_a_blob_before_migration_11_is_kept_and_read_after_it(tmp_path):
    # The schema as it was before drafts could keep their payload (whatever that migration's number).
    upto = next(i for i, m in enumerate(MIGRATIONS) if "ALTER TABLE drafts ADD COLUMN payload BLOB" in m.statements)
    notice = Notice(MessageType.RECEIPT, "01a22d2a-bcf4-726e-9d7c-511bc86da90f", (SIGNER,), T0, by="收发员")
    header = HeaderDraft.new(MessageType.RECEIPT, "county", "city", SIGNER, (SENDER,), T0, dt.timedelta(days=9),
                            in_reply_to="01a22d2a-0000-7000-8000-000000000001")

    async def before() -> str:
        db = await Database.open(tmp_path / DB_NAME)
        try:
            await migrate(db, T0, MIGRATIONS[:upto])
            blobs = BlobStore(tmp_path / BLOB_DIR)
            try:
                ref = await blobs.put(notice.encode())
            finally:
                blobs.close()
            async with db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO drafts (message_id, destination, type, header, payload_digest, payload_size,"
                    " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (header.message_id, "city", "receipt", canonical_json(header.to_json()).decode(), ref.digest,
                     ref.size, to_db_time(T0), to_db_time(T0 + dt.timedelta(days=9))))
            return ref.digest
        finally:
            await db.close()

    async def after(digest: str) -> None:
        store = await open_store(tmp_path, node_id="county")  # migrates to 11, recovers, collects garbage
        try:
            assert await store.collect_garbage(grace_seconds=0) == []
            assert store.blobs.path_for(digest).exists(), "the old draft's payload blob was collected"
            [draft] = await store.drafts.drafts_for("city")
            assert draft.payload is None and draft.payload_digest == digest
            read = _read_notices(store.blobs, [draft])
            assert read.unreadable == []
            assert [n for _, n in read.drafts] == [notice]
        finally:
            await store.close()

    asyncio.run(after(asyncio.run(before())))
