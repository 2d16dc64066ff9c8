"""The 台账 through the local API: CSV and XLSX read back, LibreOffice opening the XLSX, scope, refusals.

Real service, store and app (``local_api_support``): clerk A sends documents to B (主送) and C (抄送),
all hosted on the node, B signs for one and returns another; then the ledgers are fetched as each
clerk, read back with the csv module, openpyxl and LibreOffice headless, and compared.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import logging
import os
import subprocess
import urllib.parse
from pathlib import Path

import openpyxl
import pytest
from aiohttp import web

from node.store import InboxRow
from tests.node.api.local_api_support import (
    UNIT_A,
    UNIT_B,
    UNIT_C,
    UNIT_NAMES,
    expect_error,
    make_env,
    meta,
    run,
    send,
    template,
)
from tests.support import FakeClock

BEIJING = dt.timezone(dt.timedelta(hours=8))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HOSTILE_TITLE = "=HYPERLINK(\"http://example.invalid\",\"点此\")关于报送材料的通知"
HOSTILE_REASON = "+1 材料不全，请补充后再发"


@pytest.fixture
def env(tmp_path):
    return make_env(tmp_path)


async def _three_documents(client, env) -> list[str]:
    """A sends three documents to B and C; B signs for the first and returns the second."""
    ids = [await send(client, env, doc_meta=meta(title="关于做好冬季安全生产工作的通知")),
           await send(client, env, doc_meta=meta(title=HOSTILE_TITLE, doc_number="榕政办〔2026〕13号",
                                                 kind="请示", urgency="特急", signers=["王局长"])),
           await send(client, env, doc_meta=meta(title="关于召开防汛工作会议的通知", doc_number="榕政办〔2026〕14号"))]
    signed = await client.post(f"/api/v1/inbox/{ids[0]}/sign-for", headers=env.auth(env.clerk_b))
    assert signed.status == 200, await signed.text()
    returned = await client.post(f"/api/v1/inbox/{ids[1]}/return", json={"reason": HOSTILE_REASON},
                                 headers=env.auth(env.clerk_b))
    assert returned.status == 200, await returned.text()
    return ids


def _local(value: dt.datetime) -> dt.datetime:
    return value.astimezone(BEIJING).replace(tzinfo=None)


def test_sent_ledger_as_csv_is_utf8_with_bom_one_row_per_recipient_and_formulas_neutralised(env):
    async def scenario(client):
        ids = await _three_documents(client, env)
        response = await client.get("/api/v1/ledger/sent", headers=env.auth(env.clerk_a))
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert response.headers["X-Gwx-Ledger-Rows"] == "6"
        assert "filename*=UTF-8''" in response.headers["Content-Disposition"]
        data = await response.read()
        assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the file as UTF-8
        rows = list(csv.reader(io.StringIO(data[3:].decode("utf-8"))))
        head, body = rows[0], rows[1:]
        assert head[:11] == ["公文标识", "发文字号", "标题", "发文机关", "发文机关代码", "文种", "紧急程度", "密级",
                             "成文日期", "发文时间", "办理时限"]
        assert head[11:] == ["收文单位", "收文单位代码", "主送/抄送", "状态", "签收人", "签收时间", "退回理由", "超期"]
        cell = [dict(zip(head, row, strict=True)) for row in body]
        assert [(c["公文标识"], c["收文单位代码"]) for c in cell] == [(i, u) for i in ids for u in sorted((UNIT_B, UNIT_C))]
        first_b = cell[0]
        assert first_b["收文单位"] == UNIT_NAMES[UNIT_B] and first_b["主送/抄送"] == "主送"
        assert first_b["状态"] == "已签收" and first_b["签收人"] == "李四"
        assert first_b["签收时间"] == _local(template().now).strftime("%Y-%m-%d %H:%M:%S")
        assert first_b["发文机关"] == UNIT_NAMES[UNIT_A] and first_b["发文机关代码"] == UNIT_A
        assert first_b["发文字号"] == "榕政办〔2026〕12号" and first_b["密级"] == "非密"
        assert first_b["成文日期"] == meta()["written_on"]
        assert first_b["办理时限"] == dt.datetime.fromisoformat(meta()["deadline"]).strftime("%Y-%m-%d %H:%M:%S")
        hostile = cell[2]
        assert hostile["标题"] == "'" + HOSTILE_TITLE  # a leading = would be a formula in Excel
        assert hostile["退回理由"] == "'" + HOSTILE_REASON and hostile["状态"] == "已退回"
        assert hostile["文种"] == "请示" and hostile["紧急程度"] == "特急"
        assert cell[1]["状态"] == "已送达" and cell[1]["签收人"] == ""  # C has not signed
    run(env, scenario)


def test_received_ledger_as_xlsx_reads_back_with_openpyxl_with_dates_as_dates(env):
    async def scenario(client):
        ids = await _three_documents(client, env)
        response = await client.get("/api/v1/ledger/received", params={"format": "xlsx"},
                                    headers=env.auth(env.clerk_b))
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == XLSX
        data = await response.read()
        # Streamed as it is built (node.documents.ledger_xlsx_stream): no length known beforehand.
        assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
        book = openpyxl.load_workbook(io.BytesIO(data))
        sheet = book["收文台账"]
        rows = list(sheet.iter_rows(values_only=True))
        head = rows[0]
        assert head[9] == "收文时间" and head[2] == "标题"
        by = [dict(zip(head, r, strict=True)) for r in rows[1:]]
        assert [r["公文标识"] for r in by] == ids
        signed, returned, pending = by
        # A spreadsheet has no date-only type: a date cell is a day at midnight shown as yyyy-mm-dd.
        written_on = sheet.cell(row=2, column=head.index("成文日期") + 1)
        assert written_on.is_date and written_on.number_format == "yyyy-mm-dd"
        assert signed["成文日期"] == dt.datetime.combine(dt.date.fromisoformat(meta()["written_on"]), dt.time())
        received_at = sheet.cell(row=2, column=head.index("收文时间") + 1)
        assert received_at.is_date and received_at.number_format == "yyyy-mm-dd hh:mm:ss"
        assert signed["收文时间"] == _local(template().now) and signed["签收时间"] == _local(template().now)
        assert signed["办理时限"] == dt.datetime.fromisoformat(meta()["deadline"]).replace(tzinfo=None)
        assert signed["状态"] == "已签收" and signed["签收人"] == "李四" and signed["收文单位代码"] == UNIT_B
        assert returned["标题"] == HOSTILE_TITLE  # text in a text cell, not a formula
        assert sheet.cell(row=3, column=3).data_type == "s"
        assert returned["退回理由"] == HOSTILE_REASON and returned["签收人"] is None
        assert pending["状态"] == "待签收" and pending["超期"] is None
        assert not list(env.upload_dir.glob("upload-*"))  # the workbook's file went with the answer
    run(env, scenario)


def _soffice_csv(xlsx: Path, out: Path) -> list[list[str]]:
    """LibreOffice headless converts the XLSX to CSV (UTF-8, comma, double quotes)."""
    profile = out / "profile"
    result = subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
         "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", str(out), str(xlsx)],
        capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(out)})
    converted = out / (xlsx.stem + ".csv")
    assert converted.exists(), result.stdout + result.stderr
    return list(csv.reader(io.StringIO(converted.read_text("utf-8-sig"))))


def test_libreoffice_opens_the_xlsx_and_gives_the_rows_of_the_csv(env, tmp_path):
    got: dict[str, bytes] = {}

    async def scenario(client):
        await _three_documents(client, env)
        for fmt in ("csv", "xlsx"):
            response = await client.get("/api/v1/ledger/sent", params={"format": fmt}, headers=env.auth(env.clerk_a))
            assert response.status == 200
            got[fmt] = await response.read()
    run(env, scenario)
    xlsx = tmp_path / "sent.xlsx"
    xlsx.write_bytes(got["xlsx"])
    from_office = _soffice_csv(xlsx, tmp_path)
    ours = list(csv.reader(io.StringIO(got["csv"].decode("utf-8-sig"))))
    # Our CSV writes formula-like text with a leading apostrophe; the XLSX holds it as text as it is.
    unneutralised = [[c[1:] if c.startswith("'") else c for c in row] for row in ours]
    assert len(from_office) == 7
    assert from_office == unneutralised


def test_filters_by_date_kind_status_and_counterpart(env):
    async def scenario(client):
        ids = await _three_documents(client, env)
        today = template().now.astimezone(BEIJING).date()

        async def doc_ids(side, token, **params):
            response = await client.get(f"/api/v1/ledger/{side}", params=params, headers=env.auth(token))
            assert response.status == 200, await response.text()
            rows = list(csv.reader(io.StringIO((await response.read()).decode("utf-8-sig"))))[1:]
            return [(r[0], r[12]) for r in rows]

        assert await doc_ids("sent", env.clerk_a, kind="请示") == [(ids[1], UNIT_B), (ids[1], UNIT_C)]
        assert await doc_ids("sent", env.clerk_a, status="signed_for") == [(ids[0], UNIT_B)]
        assert await doc_ids("sent", env.clerk_a, counterpart=UNIT_C) == [(i, UNIT_C) for i in ids]
        assert await doc_ids("received", env.clerk_b, status="returned") == [(ids[1], UNIT_B)]
        assert await doc_ids("received", env.clerk_b, **{"from": today.isoformat(), "to": today.isoformat()}) == \
            [(i, UNIT_B) for i in ids]
        tomorrow = (today + dt.timedelta(days=1)).isoformat()
        assert await doc_ids("received", env.clerk_b, **{"from": tomorrow}) == []
        assert await doc_ids("received", env.clerk_b, to=(today - dt.timedelta(days=1)).isoformat()) == []
    run(env, scenario)


@pytest.mark.parametrize(("path", "params", "status", "code"), [
    ("/api/v1/ledger/sent", {"from": "2026-02-30"}, 400, "LEDGER_BAD_DATE"),
    ("/api/v1/ledger/sent", {"to": "30.11.2026"}, 400, "LEDGER_BAD_DATE"),
    ("/api/v1/ledger/sent", {"from": "0001-01-01"}, 400, "LEDGER_BAD_DATE"),
    ("/api/v1/ledger/sent", {"from": "2026-12-01", "to": "2026-11-01"}, 400, "LEDGER_BAD_RANGE"),
    ("/api/v1/ledger/sent", {"status": "pending"}, 400, "LEDGER_BAD_STATUS"),  # a receiver's status
    ("/api/v1/ledger/received", {"status": "lost"}, 400, "LEDGER_BAD_STATUS"),
    ("/api/v1/ledger/received", {"kind": "便条"}, 400, "LEDGER_BAD_KIND"),
    ("/api/v1/ledger/received", {"counterpart": "91350100M000100Y44"}, 400, "LEDGER_BAD_UNIT"),
    ("/api/v1/ledger/received", {"format": "pdf"}, 400, "LEDGER_BAD_FORMAT"),
    ("/api/v1/ledger/received", {"sort": "title"}, 400, "API_BAD_PARAMETER"),
    ("/api/v1/ledger/received", {"unit": ""}, 400, "API_BAD_PARAMETER"),  # empty is not "any"
    ("/api/v1/ledger/sent/stats", {"period": "year"}, 400, "LEDGER_BAD_PERIOD"),
    ("/api/v1/ledger/sent/stats", {"by": "title"}, 400, "LEDGER_BAD_GROUPING"),
    ("/api/v1/ledger/sent/stats", {"period": "day", "from": "1970-01-01", "to": "2999-12-31"}, 400,
     "LEDGER_BAD_RANGE"),  # a row for each of 376,000 days
    ("/api/v1/ledger/sent", {"unit": UNIT_B}, 403, "API_FORBIDDEN"),  # another unit's ledger
    ("/api/v1/ledger/received/stats", {"unit": UNIT_C}, 403, "API_FORBIDDEN"),
])
def test_bad_input_is_a_typed_error_before_any_row(env, path, params, status, code):
    async def scenario(client):
        await expect_error(await client.get(path, params=params, headers=env.auth(env.clerk_a)), status, code)
    run(env, scenario)


def test_operators_get_statistics_of_every_hosted_unit_but_no_ledger_rows(env):
    async def scenario(client):
        await _three_documents(client, env)
        await expect_error(await client.get("/api/v1/ledger/sent", headers=env.auth(env.operator)), 403,
                           "API_FORBIDDEN")
        response = await client.get("/api/v1/ledger/received/stats", params={"period": "day"},
                                    headers=env.auth(env.operator))
        assert response.status == 200, await response.text()
        stats = await response.json()
        by_unit = {r["unit"]: r for r in stats["rows"]}
        assert set(by_unit) == {UNIT_B, UNIT_C}  # A received nothing: no row
        b = by_unit[UNIT_B]
        assert (b["documents"], b["signed"], b["returned"]) == (3, 1, 1)
        assert b["returned_rate"] == round(1 / 3, 4) and b["sign_median_s"] == 0
        assert b["period_start"] == template().now.astimezone(BEIJING).date().isoformat()
        await expect_error(await client.get("/api/v1/ledger/sent/stats", params={"unit": "91110000000000000A"},
                                            headers=env.auth(env.operator)), 400, "LEDGER_BAD_UNIT")
        elsewhere = "111000000000131358"  # a valid code this node does not host
        await expect_error(await client.get("/api/v1/ledger/sent/stats", params={"unit": elsewhere},
                                            headers=env.auth(env.operator)), 404, "LEDGER_UNIT_NOT_HOSTED")
        mine = await (await client.get("/api/v1/ledger/sent/stats", headers=env.auth(env.clerk_a))).json()
        assert [(r["unit"], r["documents"], r["rows"]) for r in mine["rows"]] == [(UNIT_A, 3, 6)]
        split = await (await client.get("/api/v1/ledger/sent/stats", params={"by": "counterpart"},
                                        headers=env.auth(env.clerk_a))).json()
        assert [(r["counterpart"], r["counterpart_name"], r["signed"], r["returned"]) for r in split["rows"]] == \
            [(UNIT_B, UNIT_NAMES[UNIT_B], 1, 1), (UNIT_C, UNIT_NAMES[UNIT_C], 0, 0)]
    run(env, scenario)


def test_a_store_failure_in_the_middle_of_a_csv_cuts_the_answer_instead_of_ending_it(env):
    """Once the CSV has started, an error cannot be a JSON answer: the connection is cut, so the
    client sees a broken transfer rather than a file that looks whole."""
    import aiohttp

    async def scenario(client):
        store = env.store
        digest = (await store.blobs.put(b"package")).digest
        async with store.transaction() as tx:
            for n in range(5000):  # five pages of the store's 1,000 rows
                await store.messages.add_inbox(InboxRow(
                    doc_id=f"X{n:05d}", unit=UNIT_B, role="主送", from_unit=UNIT_A, title=f"第{n}号", kind="通知",
                    status="pending", package_digest=digest, received_at=store.clock()), tx=tx)
        response = await client.get("/api/v1/ledger/received", headers=env.auth(env.clerk_b))
        assert response.status == 200 and response.headers["X-Gwx-Ledger-Rows"] == "5000"
        first = await response.content.readany()
        assert first.startswith(b"\xef\xbb\xbf")
        async with store.db.transaction() as tx:  # the table goes away under the export
            await tx.execute("ALTER TABLE inbox RENAME TO inbox_gone")
        with pytest.raises(aiohttp.ClientPayloadError):
            while await response.content.readany():
                pass
        async with store.db.transaction() as tx:
            await tx.execute("ALTER TABLE inbox_gone RENAME TO inbox")
    run(env, scenario)


def test_a_client_that_leaves_stops_the_xlsx_build(env, caplog):
    """The XLSX's first bytes come after the first page, long before the build ends; a client that
    gives up meanwhile must not leave the node building the rest of a large ledger for nobody, and
    nothing is left on disk. Served as node.runner serves the local API (aiohttp's test server would
    cancel the handler, which the node's does not)."""
    caplog.set_level(logging.INFO, logger="gwx.local_api")

    async def main():
        async with env.serve() as app:
            store = env.store
            digest = (await store.blobs.put(b"package")).digest
            async with store.transaction() as tx:
                for n in range(20000):  # twenty pages of the store's 1,000 rows: seconds of building
                    await store.messages.add_inbox(InboxRow(
                        doc_id=f"X{n:05d}", unit=UNIT_B, role="主送", from_unit=UNIT_A, title=f"第{n}号",
                        kind="通知", status="pending", package_digest=digest, received_at=store.clock()), tx=tx)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            try:
                port = site._server.sockets[0].getsockname()[1]
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET /api/v1/ledger/received?format=xlsx HTTP/1.1\r\nHost: x\r\n"
                             f"Authorization: Bearer {env.clerk_b}\r\n\r\n".encode())
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
                assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head
                size = int((await asyncio.wait_for(reader.readline(), 60)).strip(), 16)
                first = await reader.readexactly(size)
                assert first.startswith(b"PK\x03\x04")  # the ZIP has begun: its first member, the sheet
                writer.close()  # the clerk gives up
                for _ in range(3000):  # until the node has dropped the build
                    if any("abandoned" in r.getMessage() for r in caplog.records):
                        break
                    await asyncio.sleep(0.01)
                abandoned = [r.getMessage() for r in caplog.records if "abandoned" in r.getMessage()]
                assert abandoned, [r.getMessage() for r in caplog.records]
                assert 0 < int(abandoned[0].split(" after ")[1].split()[0]) < 20000
                assert not list(env.upload_dir.glob("upload-ledger-*"))  # nothing was ever written there
            finally:
                await runner.cleanup()
    asyncio.run(main())


def test_every_formula_start_is_neutralised_in_the_csv(env):
    """Spreadsheets take a cell starting with = + - @ (and, some, a tab or a CR) for a formula."""
    titles = ["-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+2", "\r=1+2", "1-2 月工作要点", "关于-的通知"]

    async def scenario(client):
        store = env.store
        digest = (await store.blobs.put(b"package")).digest
        for n, title in enumerate(titles):
            await store.messages.add_inbox(InboxRow(
                doc_id=f"F{n}", unit=UNIT_B, role="主送", from_unit=UNIT_A, title=title, kind="通知",
                status="pending", package_digest=digest, received_at=store.clock()))
        response = await client.get("/api/v1/ledger/received", headers=env.auth(env.clerk_b))
        assert response.status == 200, await response.text()
        rows = list(csv.reader(io.StringIO((await response.read())[3:].decode("utf-8"), newline="")))
        assert [r[2] for r in rows[1:]] == ["'" + t for t in titles[:4]] + titles[4:]
    run(env, scenario)


def test_the_file_is_named_by_the_nodes_clock(env):
    """The date in the file name is the node's (the same clock that judges 超期), not the machine's."""
    later = template().now + dt.timedelta(days=40)
    env.ctx = dataclasses.replace(env.ctx, clock=FakeClock(later))

    async def scenario(client):
        response = await client.get("/api/v1/ledger/received", headers=env.auth(env.clerk_b))
        assert response.status == 200, await response.text()
        day = later.astimezone(BEIJING).date().isoformat()
        assert response.headers["Content-Disposition"].endswith(urllib.parse.quote(f"收文台账-{UNIT_B}-{day}.csv"))
    run(env, scenario)


def test_the_rows_announced_are_the_rows_sent_when_documents_arrive_meanwhile(env):
    """X-Gwx-Ledger-Rows (a progress bar's 100 %) is counted when the export starts; a document
    received while a long CSV is being sent is in the next export, not half in this one."""
    async def scenario(client):
        store = env.store
        digest = (await store.blobs.put(b"package")).digest

        def received(n):
            return InboxRow(doc_id=f"Y{n:05d}", unit=UNIT_B, role="主送", from_unit=UNIT_A, title=f"第{n}号",
                            kind="通知", status="pending", package_digest=digest, received_at=store.clock())
        async with store.transaction() as tx:
            for n in range(3000):  # three pages of the store's 1,000 rows
                await store.messages.add_inbox(received(n), tx=tx)
        response = await client.get("/api/v1/ledger/received", headers=env.auth(env.clerk_b))
        assert response.status == 200 and response.headers["X-Gwx-Ledger-Rows"] == "3000"
        first = await response.content.readany()
        await store.messages.add_inbox(received(3000))  # arrives during the export
        data = first + await response.read()
        rows = list(csv.reader(io.StringIO(data[3:].decode("utf-8"))))
        assert len(rows) - 1 == 3000 and rows[-1][0] == "Y02999"
    run(env, scenario)
