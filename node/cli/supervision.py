"""``gwx supervision``: 督办 — documents the units your unit supervises left unsigned past their 办理时限
and the grace, as the node hosting each late unit escalated them (``node.supervision``).

A clerk's command like ``gwx inbox`` (same ``--node``, ``--token-file``, ``--json`` and paging):
``--status open`` (督办中) or ``settled`` (已办结: the late unit signed for or returned it since).
On a terminal, open items are shown in red.
"""

from __future__ import annotations

import argparse
from typing import Any

from node.cli.clerk import PAGE, Red, _command, _when, client_for, emit_json, render_table


def register(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "supervision", "督办: overdue documents escalated to your unit by the units it supervises")
    p.add_argument("--status", choices=("open", "settled"), help="督办中 (open) or 已办结 (settled); default both")
    p.add_argument("--limit", type=int, default=None, help=f"items per page (default {PAGE})")
    p.add_argument("--after", metavar="N", help="the next page: the number printed under the previous one")
    p.set_defaults(func=_supervision)


def _supervision(args: argparse.Namespace) -> int:
    items = client_for(args).get("/api/v1/supervision", {"status": args.status, "limit": args.limit,
                                                        "after": args.after})
    if args.json:
        return emit_json(items)
    rows = [[i["doc_id"], i.get("unit_name") or i["unit"], i["title"], _when(i["deadline"]),
             f"{i['working_days_late']} 个工作日", _state(i), _when(i["escalated_at"])] for i in items]
    print(render_table(["公文标识", "逾期单位", "标题", "办理时限", "督办时逾期", "状态", "督办时间"], rows))
    if items and len(items) >= (args.limit or PAGE):
        status = f" --status {args.status}" if args.status else ""
        print(f"（本页 {len(items)} 条；下一页：gwx supervision{status} --after {items[-1]['id']}）")
    return 0


def _state(item: dict[str, Any]) -> str:
    if item["status"] == "open":
        return Red(item["status_label"])
    verb = "签收" if item.get("settled_as") == "signed_for" else "退回"
    return f"{item['status_label']}（{item.get('settled_by') or ''}{verb} {_when(item.get('settled_at'))}）"
