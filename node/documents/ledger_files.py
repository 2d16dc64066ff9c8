"""Writing a 台账 (:class:`node.documents.ledger.LedgerExport`) as CSV or XLSX, a page at a time.

* **CSV**: UTF-8 with a byte order mark, so Excel opens the Chinese text correctly (without it
  Excel reads a CSV in the machine's ANSI code page, GBK on Chinese Windows, and shows mojibake);
  RFC 4180 quoting, CRLF line ends. Dates ``YYYY-MM-DD``, times ``YYYY-MM-DD HH:MM:SS`` in Beijing
  time. Produced as a stream of byte chunks (:func:`csv_chunks`), one per page of rows.
* **CSV injection**: a spreadsheet treats a cell starting with ``=``, ``+``, ``-`` or ``@`` (and, in
  some, a tab or carriage return) as a formula, which a title or a 退回理由 from another unit could
  use (``=HYPERLINK(…)``, DDE). Such a cell is written with a leading apostrophe (``'=1+2``), the
  OWASP recommendation: the spreadsheet shows it as text. The value is otherwise unchanged.
* **XLSX** (written by :mod:`node.documents.ledger_xlsx_stream`, into the answer as rows come; its
  cells are made there, so a node imports openpyxl only when an XLSX is asked for):
  openpyxl's write-only cells, one sheet, a bold heading row frozen at the top. Dates are date
  cells and times datetime cells (number formats ``yyyy-mm-dd`` and ``yyyy-mm-dd hh:mm:ss``), so
  they sort and filter as dates. Text is always a text cell: a title starting with ``=`` is stored
  as a string, never as a formula, so the XLSX needs no apostrophe. Characters XML cannot carry
  (control characters) are dropped from XLSX cells.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

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
