"""The 台账 XLSX written straight into the answer (node.documents.ledger_xlsx_stream): bytes come out
after every page, nothing is written to disk (the system's temporary directory included), and the
file is a whole ZIP and workbook — read back by Python's zipfile and by openpyxl, cells typed."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import tempfile
import zipfile

import openpyxl
import pytest

from node.api.auth import Principal
from node.documents.ledger import open_export
from node.documents.ledger_xlsx_stream import xlsx_chunks
from node.store import InboxRow
from tests.node.store.conftest import open_store

U_CITY = "91350100M000100Y43"
U_COUNTY = "11100000000013127D"
CLERK = Principal("t1", "李四", "clerk", U_COUNTY)
NOW = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


async def _fill(store, n):
    digest = (await store.blobs.put(b"package")).digest
    async with store.transaction() as tx:
        for i in range(n):
            await store.messages.add_inbox(InboxRow(
                doc_id=f"D{i:05d}", unit=U_COUNTY, role="主送", from_unit=U_CITY,
                title="=HYPERLINK(\"http://x\")" if i == 7 else f"第{i}号通知", kind="通知", status="pending",
                package_digest=digest, received_at=NOW + dt.timedelta(minutes=i), deadline=NOW), tx=tx)


def _export(store):
    return open_export(store, CLERK, "received", lambda code: {U_CITY: "市政府办公室"}.get(code), NOW)


def test_the_workbook_comes_out_page_by_page_and_reads_back_whole(tmp_path, monkeypatch):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    seen = []

    async def main():
        async with open_store(tmp_path / "node") as store:
            await _fill(store, 2500)
            chunks = []
            async for chunk in xlsx_chunks(await _export(store), lambda done: seen.append((done, len(chunks)))):
                chunks.append(chunk)
            return chunks
    chunks = asyncio.run(main())
    # The first bytes (the ZIP's first member, the sheet) are out before the last page is read.
    assert [done for done, _ in seen] == [1000, 2000, 2500] and seen[1][1] >= 1 and len(chunks) >= 3
    assert list(system_tmp.iterdir()) == []  # nothing spooled anywhere
    data = b"".join(chunks)
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet.title == "收文台账" and sheet.max_row == 2501 and sheet.freeze_panes == "A2"
    rows = list(sheet.iter_rows(values_only=True))
    head = rows[0]
    by = [dict(zip(head, r, strict=True)) for r in rows[1:]]
    assert [r["公文标识"] for r in by] == [f"D{i:05d}" for i in range(2500)]  # every row, in order
    assert by[3]["标题"] == "第3号通知" and by[3]["发文机关"] == "市政府办公室"
    assert by[7]["标题"] == '=HYPERLINK("http://x")'  # text, never a formula
    title = sheet.cell(row=9, column=head.index("标题") + 1)
    assert title.data_type == "s"
    received = sheet.cell(row=2, column=head.index("收文时间") + 1)
    assert received.value == dt.datetime(2026, 3, 2, 9, 0) and received.number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet["A1"].font.b and sheet.column_dimensions["C"].width == 44  # 标题's width


def test_a_client_that_leaves_stops_the_build(tmp_path):
    def client_left(done):
        raise ConnectionResetError("gone")

    async def main():
        async with open_store(tmp_path / "node") as store:
            await _fill(store, 1500)
            with pytest.raises(ConnectionResetError):
                async for _ in xlsx_chunks(await _export(store), client_left):
                    pass
    asyncio.run(main())
