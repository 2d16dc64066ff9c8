"""Where the XLSX writer keeps the sheet while it builds: beside the workbook, never in the system's
temporary directory (a tmpfs on some systems: the whole ledger in RAM, and titles left behind)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import tempfile

import openpyxl
import pytest

from node.api.auth import Principal
from node.api.upload import clear_stale_uploads
from node.documents.ledger import open_export
from node.documents.ledger_files import spool_path, write_xlsx
from node.store import InboxRow
from tests.node.store.conftest import open_store

U_CITY = "91350100M000100Y43"
U_COUNTY = "11100000000013127D"
CLERK = Principal("t1", "李四", "clerk", U_COUNTY)
NOW = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


async def _export(store, n):
    digest = (await store.blobs.put(b"package")).digest
    async with store.transaction() as tx:
        for i in range(n):
            await store.messages.add_inbox(InboxRow(
                doc_id=f"D{i:05d}", unit=U_COUNTY, role="主送", from_unit=U_CITY, title=f"第{i}号通知", kind="通知",
                status="pending", package_digest=digest, received_at=NOW), tx=tx)
    return await open_export(store, CLERK, "received", lambda code: None, NOW)


def test_the_sheet_is_spooled_beside_the_workbook_and_removed(tmp_path, monkeypatch):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    workbook = uploads / "upload-ledger-1.part"
    seen = []

    def look(done):  # what is on disk while the build runs, after each page
        seen.append((done, sorted(p.name for p in system_tmp.iterdir()), spool_path(workbook).exists()))

    async def main():
        async with open_store(tmp_path / "node") as store:
            assert await write_xlsx(await _export(store, 2500), workbook, look) == 2500
    asyncio.run(main())
    assert [done for done, _, _ in seen] == [1000, 2000, 2500]
    assert all(listing == [] and spooled for _, listing, spooled in seen), seen
    assert sorted(p.name for p in uploads.iterdir()) == [workbook.name]  # the spool went with the save
    assert openpyxl.load_workbook(io.BytesIO(workbook.read_bytes())).active.max_row == 2501


def test_a_stopped_build_leaves_no_spool_and_a_crash_leftover_is_swept(tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    workbook = uploads / "upload-ledger-2.part"

    def client_left(done):
        raise ConnectionResetError("gone")

    async def main():
        async with open_store(tmp_path / "node") as store:
            with pytest.raises(ConnectionResetError):
                await write_xlsx(await _export(store, 1500), workbook, client_left)
    asyncio.run(main())
    assert not spool_path(workbook).exists()
    spool_path(workbook).write_text("<sheetData>第1号通知</sheetData>")  # as a crash would leave it
    assert clear_stale_uploads(uploads) == 1 and list(uploads.iterdir()) == []
