"""``gwx ledger export`` and ``gwx ledger stats``: the 台账 through the node's local API.

``export`` saves the sent or received ledger of the clerk's unit as CSV (UTF-8 with BOM, for
Excel) or XLSX, streamed into ``FILE.part`` and renamed to ``FILE`` only when whole — a node that
cuts the answer off leaves no file that looks complete. On a terminal, stderr shows the progress
(the rows the node announced, the bytes received). ``stats`` prints counts, time to 签收 (median,
p90), overdue and returned rates per unit and period (``--json``: the node's answer as is).
Filters (both commands): ``--from``/``--to`` (Beijing dates, inclusive), ``--kind`` (文种),
``--status``, ``--with UNIT`` (the recipient on the sent side, the sender on the received side) and
``--unit`` (whose ledger: a clerk's own; an operator's statistics: one hosted unit).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from node.cli.api_client import BadInput
from node.cli.clerk import add_common_options, client_for, emit_json, render_table

FORMATS = ("csv", "xlsx")
PERIODS = ("day", "week", "month")
STATUS_HELP = ("sent: queued sent delivered signed_for returned recalled failed; "
               "received: pending signed_for registered returned recalled")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="save the sent or received 台账 as CSV or XLSX",
                       description="save the sent (发文) or received (收文) 台账 of your unit as CSV (UTF-8 with "
                                   "BOM, cells starting with = + - @ written as text) or XLSX")
    _side_and_filters(p)
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="csv or xlsx (default: from the file name's suffix, else csv)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="the file to write")
    add_common_options(p)
    p.set_defaults(func=_export)

    p = sub.add_parser("stats", help="statistics per unit and period: counts, time to 签收, overdue and returned rates",
                       description="statistics of the sent or received 台账 per unit and period: documents, "
                                   "签收 (median and p90 time to it), overdue rate, returned rate")
    _side_and_filters(p)
    p.add_argument("--period", choices=PERIODS, default="month", help="day, week (from Monday) or month (default: month)")
    p.add_argument("--by-counterpart", action="store_true",
                   help="split each unit's figures by recipient (--sent) or sending unit (--received)")
    add_common_options(p)
    p.set_defaults(func=_stats)


def _side_and_filters(p: argparse.ArgumentParser) -> None:
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--sent", dest="side", action="store_const", const="sent", help="the sent ledger (发文)")
    side.add_argument("--received", dest="side", action="store_const", const="received",
                      help="the received ledger (收文)")
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (Beijing date)")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (Beijing date), inclusive")
    p.add_argument("--kind", help="文种, e.g. 通知")
    p.add_argument("--status", help=STATUS_HELP)
    p.add_argument("--with", dest="counterpart", metavar="UNIT",
                   help="only this recipient (sent) or sending unit (received)")
    p.add_argument("--unit", help="whose ledger (default: your own unit)")


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {"from": args.date_from, "to": args.date_to, "kind": args.kind, "status": args.status,
            "counterpart": args.counterpart, "unit": args.unit}


class _Progress:
    """One line on stderr, redrawn at most ten times a second: rows announced, bytes received."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown_at = 0.0
        self.drawn = False

    def __call__(self, written: int, response: Any) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.shown_at < 0.1:
            return
        self.shown_at = now
        rows = response.getheader("X-Gwx-Ledger-Rows") or "?"
        sys.stderr.write(f"\r台账 {rows} 行：已接收 {written / 1048576:.1f} MiB")
        sys.stderr.flush()
        self.drawn = True

    def done(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _export(args: argparse.Namespace) -> int:
    fmt = args.format or ("xlsx" if args.output.suffix.lower() == ".xlsx" else "csv")
    if args.output.is_dir():
        raise BadInput(f"{args.output} is a directory; give the file to write")
    part = args.output.with_name(args.output.name + ".part")
    accept = "text/csv" if fmt == "csv" else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    progress = _Progress(sys.stderr.isatty())
    client = client_for(args)
    try:
        with open(part, "wb") as out:
            written = client.download(f"/api/v1/ledger/{args.side}", out, query={**_filters(args), "format": fmt},
                                      accept=accept, progress=progress)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, args.output)
    finally:
        progress.done()
        if part.exists():
            part.unlink()
    if args.json:
        return emit_json({"ok": True, "file": str(args.output), "format": fmt, "bytes": written})
    label = "发文台账" if args.side == "sent" else "收文台账"
    print(f"已导出 {label} → {args.output}（{written} 字节）")
    return 0


def _hours(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 3600:.1f} 小时"


def _stats(args: argparse.Namespace) -> int:
    query = {**_filters(args), "period": args.period, "by": "counterpart" if args.by_counterpart else None}
    stats = client_for(args).get(f"/api/v1/ledger/{args.side}/stats", query)
    if args.json:
        return emit_json(stats)
    other = ["收文单位" if args.side == "sent" else "来文单位"] if args.by_counterpart else []
    rows = [[r["unit_name"] or r["unit"], *([r["counterpart_name"] or r["counterpart"]] if other else []),
             r["period_start"], str(r["documents"]), str(r["rows"]), str(r["signed"]),
             _hours(r["sign_median_s"]), _hours(r["sign_p90_s"]), f"{r['overdue_rate']:.1%}",
             f"{r['returned_rate']:.1%}"] for r in stats["rows"]]
    print(render_table(["单位", *other, "期间起", "件数", "份数", "已签收", "签收用时中位数", "签收用时P90", "超期率", "退回率"],
                       rows))
    return 0
