"""A 台账 as XLSX written straight into the answer, a page at a time: no file, no wait for the whole workbook.

openpyxl's own save builds a workbook in a file (its write-only sheet spooled to a temporary file,
then copied into the ZIP at save), so an answer could start only once all of it was built — 35 s
for 100,000 rows before (bench/console.py), with the sheet's XML on disk meanwhile. Here the ZIP is
written to a sink the caller empties after every page (:func:`xlsx_chunks`): the sheet is the first
member, its XML deflated into the ZIP as openpyxl's write-only sheet appends each row; the small
parts (workbook, styles, content types, relations) follow once the rows are done, written by
openpyxl's own :class:`ExcelWriter` with the sheet left out, since it is in the ZIP already. Memory
holds one page's compressed bytes. The ZIP is not seekable, so each member carries its sizes in a
data descriptor after its data (ZIP's streaming form; openpyxl, LibreOffice and Excel read it).

The cells are :mod:`node.documents.ledger_files`' (same headings, widths, frozen heading row, date
cells, text never a formula): one workbook, two ways of writing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from zipfile import ZIP_DEFLATED, ZipFile

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.writer.excel import ExcelWriter

from node.documents.ledger import LedgerExport
from node.documents.ledger_files import DATE_FORMAT, DEFAULT_WIDTH, TIME_FORMAT, WIDTHS, Progress, sheet_title

SHEET = "xl/worksheets/sheet1.xml"
# A sheet's XML takes ~1 KB a row; past this many rows it may pass ZIP's 4 GiB member limit's
# neighbourhood, and the member is written in ZIP64 form (sizes unknown until the end).
ZIP64_ROWS = 1_000_000


class _Sink:
    """Where the ZIP is written: the bytes since the last :meth:`take` (no seek: a stream)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


class _SheetAlreadyWritten(ExcelWriter):
    """openpyxl's writer of the workbook's parts, for a sheet whose XML is in the ZIP already."""

    def write_worksheet(self, ws: Any) -> None:
        ws._drawing = SpreadsheetDrawing()
        ws._drawing.charts = ws._charts
        ws._drawing.images = ws._images
        ws._rels = ws._writer._rels
        self.manifest.append(ws)


class _Build:
    """One workbook being written into a sink (each method runs in a worker thread)."""

    def __init__(self, export: LedgerExport, sink: _Sink) -> None:
        self.archive = ZipFile(sink, "w", ZIP_DEFLATED, allowZip64=True)
        self.member = self.archive.open(SHEET, "w", force_zip64=export.rows >= ZIP64_ROWS)
        self.wb = Workbook(write_only=True)
        self.ws = self.wb.create_sheet(title=sheet_title(export))
        self.ws._id = 1  # its path, xl/worksheets/sheet1.xml (ExcelWriter numbers it so too)
        self.ws.freeze_panes = "A2"
        for index, heading in enumerate(export.headings, 1):
            self.ws.column_dimensions[get_column_letter(index)].width = WIDTHS.get(heading, DEFAULT_WIDTH)
        # The sheet's writer, given the ZIP member instead of a spool file (what openpyxl's first
        # append would create, after the panes and widths it writes at the top).
        self.ws._writer = WorksheetWriter(self.ws, out=self.member)
        self.ws._writer.write_top()
        bold = Font(bold=True)
        head = []
        for heading in export.headings:
            cell = WriteOnlyCell(self.ws, heading)
            cell.font = bold
            head.append(cell)
        self.ws.append(head)

    def finish(self) -> None:
        self.ws.close()  # the sheet's XML ends (its writer closes the xmlfile, not the member)
        self.member.close()
        self.wb.properties.modified = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        _SheetAlreadyWritten(self.wb, self.archive).save()  # the other parts, then the central directory

    def abandon(self) -> None:
        with contextlib.suppress(Exception):  # the workbook is not wanted: nothing more is written
            if not self.ws.closed:
                self.ws.close()
        with contextlib.suppress(Exception):
            self.member.close()


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


def append_page(ws: Any, page: list[list[Any]]) -> None:
    for row in page:
        ws.append([_xlsx_cell(ws, v) for v in row])


async def xlsx_chunks(export: LedgerExport, progress: Progress | None = None) -> AsyncIterator[bytes]:
    """The XLSX of ``export`` as byte chunks, one (or none) per page of rows, then the end of the ZIP.

    ``progress`` is called after each page on the event loop; an exception it raises (the client
    has gone) stops the build there. The caller must not close the iterator early to mean success:
    only the last chunk makes the file whole."""
    sink = _Sink()
    build = await asyncio.to_thread(_Build, export, sink)
    finished = False
    try:
        done = 0
        async for page in export.pages():
            await asyncio.to_thread(append_page, build.ws, page)
            done += len(page)
            if progress:
                progress(done)
            chunk = sink.take()
            if chunk:
                yield chunk
        await asyncio.to_thread(build.finish)
        finished = True
        yield sink.take()
    finally:
        if not finished:
            await asyncio.to_thread(build.abandon)
