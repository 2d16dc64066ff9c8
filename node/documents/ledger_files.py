"""Writing a 台账 (:class:`node.documents.ledger.LedgerExport`) as CSV or XLSX, a page at a time.

* **CSV**: UTF-8 with a byte order mark, so Excel opens the Chinese text correctly (without it
  Excel reads a CSV in the machine's ANSI code page, GBK on Chinese Windows, and shows mojibake);
  RFC 4180 quoting, CRLF line ends. Dates ``YYYY-MM-DD``, times ``YYYY-MM-DD HH:MM:SS`` in Beijing
  time. Produced as a stream of byte chunks (:func:`csv_chunks`), one per page of rows.
* **CSV injection**: a spreadsheet treats a cell starting with ``=``, ``+``, ``-`` or ``@`` (and, in
  some, a tab or carriage return) as a formula, which a title or a 退回理由 from another unit could
  use (``=HYPERLINK(…)``, DDE). Such a cell is written with a leading apostrophe (``'=1+2``), the
  OWASP recommendation: the spreadsheet shows it as text. The value is otherwise unchanged.
* **XLSX**: openpyxl in write-only mode (rows go to a spool file as they are appended; the
  workbook is zipped at the end), one sheet, a bold heading row frozen at the top. Dates are date
  cells and times datetime cells (number formats ``yyyy-mm-dd`` and ``yyyy-mm-dd hh:mm:ss``), so
  they sort and filter as dates. Text is always a text cell: a title starting with ``=`` is stored
  as a string, never as a formula, so the XLSX needs no apostrophe. Characters XML cannot carry
  (control characters) are dropped from XLSX cells.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet import _writer as sheet_writer

from node.documents.ledger import LedgerExport
from node.store.values import LEDGER_SENT

BOM = "\ufeff".encode()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
# Column widths (characters) by heading; others get DEFAULT_WIDTH.
WIDTHS = {"公文标识": 28, "发文字号": 20, "标题": 44, "发文机关": 24, "发文机关代码": 21, "收文单位": 24,
          "收文单位代码": 21, "退回理由": 30, "成文日期": 12}
DEFAULT_WIDTH = 17
Progress = Callable[[int], None]


def neutralise(text: str) -> str:
    """A CSV cell a spreadsheet would take for a formula, made text (see the module docstring)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return neutralise(str(value))


def _csv_text(rows: list[list[Any]] | tuple[str, ...], *, heading: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if heading:
        writer.writerow(rows)
    else:
        writer.writerows([csv_cell(v) for v in row] for row in rows)
    return out.getvalue().encode("utf-8")


async def csv_chunks(export: LedgerExport, progress: Progress | None = None) -> AsyncIterator[bytes]:
    """The CSV file as byte chunks: the BOM and the heading, then one chunk per page of rows."""
    yield BOM + _csv_text(export.headings, heading=True)
    done = 0
    async for page in export.pages():
        yield _csv_text(page)
        done += len(page)
        if progress:
            progress(done)


def sheet_title(export: LedgerExport) -> str:
    return "发文台账" if export.side == LEDGER_SENT else "收文台账"


def _xlsx_cell(ws: Any, value: Any) -> Any:
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if value.startswith("="):
            cell = WriteOnlyCell(ws, value)
            cell.data_type = "s"  # openpyxl would make it a formula; it is a title or a reason
            return cell
        return value
    if isinstance(value, dt.datetime):
        cell = WriteOnlyCell(ws, value)
        cell.number_format = TIME_FORMAT
        return cell
    if isinstance(value, dt.date):
        cell = WriteOnlyCell(ws, value)
        cell.number_format = DATE_FORMAT
        return cell
    return value


def _append_page(ws: Any, page: list[list[Any]]) -> None:
    for row in page:
        ws.append([_xlsx_cell(ws, v) for v in row])


def spool_path(path: Path) -> Path:
    """Where the sheet's XML is spooled while ``path`` is written: beside it, named after it (so a
    crash's leftover in the upload directory is swept with the upload files at start)."""
    return path.with_name(f"{path.stem}-sheet{path.suffix}")


def _start_sheet(export: LedgerExport, spool: Path) -> tuple[Workbook, Any]:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=sheet_title(export))
    ws.freeze_panes = "A2"
    for index, heading in enumerate(export.headings, 1):
        ws.column_dimensions[get_column_letter(index)].width = WIDTHS.get(heading, DEFAULT_WIDTH)
    # openpyxl would spool the sheet into tempfile.gettempdir() (a tmpfs on some systems: the whole
    # ledger in RAM; a crash leaves it there, titles and all). Its writer is given our file instead,
    # created as openpyxl's own first append would (after the panes and widths it writes at the top),
    # and registered in ALL_TEMP_FILES as its own are, since its save removes it from that list.
    ws._writer = sheet_writer.WorksheetWriter(ws, out=str(spool))
    sheet_writer.ALL_TEMP_FILES.append(str(spool))
    ws._writer.write_top()
    bold = Font(bold=True)
    head = []
    for heading in export.headings:
        cell = WriteOnlyCell(ws, heading)
        cell.font = bold
        head.append(cell)
    ws.append(head)
    return wb, ws


def _discard(ws: Any, spool: Path) -> None:
    """The spool removed, its writer closed (a build stopped half-way leaves its XML unfinished)."""
    if ws is not None and not ws.closed:
        with contextlib.suppress(Exception):  # the sheet is not wanted; closing it ends its XML and file
            ws.close()
    spool.unlink(missing_ok=True)
    if str(spool) in sheet_writer.ALL_TEMP_FILES:
        sheet_writer.ALL_TEMP_FILES.remove(str(spool))


async def write_xlsx(export: LedgerExport, path: Path, progress: Progress | None = None) -> int:
    """Write the ledger to ``path`` as XLSX; returns the number of rows written (headings aside).

    openpyxl is synchronous: each page is appended, and the workbook saved, in a worker thread,
    while the store is read between pages on the event loop. ``progress`` is called after each page
    on the event loop; an exception it raises (the client has gone) stops the build there. The
    sheet is spooled to :func:`spool_path` (removed when the workbook is saved, or the build stops)."""
    spool = spool_path(path)
    ws = None
    try:
        wb, ws = await asyncio.to_thread(_start_sheet, export, spool)
        done = 0
        async for page in export.pages():
            await asyncio.to_thread(_append_page, ws, page)
            done += len(page)
            if progress:
                progress(done)
        await asyncio.to_thread(wb.save, str(path))
    finally:
        _discard(ws, spool)
    return done
