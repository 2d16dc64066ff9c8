"""The clerks' commands (收发员): ``gwx send``, ``inbox``, ``outbox``, ``show``, ``sign-for``,
``return``, ``register``, ``recall``, ``urge``, ``track``, ``add-recipient`` (补发), ``forward`` (转发) — clients of the node's local API.

They are top-level commands (``gwx inbox``, not ``gwx doc inbox``): they are what a clerk types all
day. Each takes ``--node URL`` (default: the environment variable GWX_NODE, else
http://127.0.0.1:7080), ``--token-file FILE`` (default: the token itself in the environment
variable GWX_TOKEN) and ``--json``, which prints the node's JSON answer exactly as received, for
scripts. Lists come a page at a time (``--limit``, default 50); under a full page the command
prints the ``--after`` value of the next one. ``gwx download`` (:mod:`node.cli.download`) saves a
document's files. Without ``--json`` the answer is a table aligned for a terminal: CJK characters take two
columns (``unicodedata.east_asian_width``), so padding counts display columns, not characters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import unicodedata
import urllib.parse
from pathlib import Path
from typing import Any

from exchange_protocol.states import SenderStatus
from node import error_kinds
from node.cli.api_client import DEFAULT_NODE, ApiClient, BadInput, MultipartStream, read_token
from pki.errors import ErrorKind

PROGRESS_MIN_BYTES = 4 * 1024 * 1024
PAGE = 50  # the node's default page size
DOC_ID_HELP = "the document's 公文标识, as inbox/outbox list it"
PARTLY_DONE = error_kinds.EXIT_CODE[ErrorKind.CONFLICT]  # a 撤回/催办 some recipients refused


def register(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "send", "seal and send a document (发文) as your unit")
    _submission_options(p)
    p.set_defaults(func=_send, forwarding=None)

    p = _command(sub, "forward", "转发 a received document, unchanged, with a cover 通知 to the units it names")
    p.add_argument("forwarding", metavar="ID", help="the received document's 公文标识")
    _submission_options(p, "the cover 通知's META.json: its to/cc are the units forwarded to")
    p.set_defaults(func=_send)

    for name, help_text, func, statuses in (
            ("inbox", "received documents (收文箱)", _inbox, "pending signed_for registered returned recalled"),
            ("outbox", "sent documents (发文箱)", _outbox, "queued sent delivered signed_for returned recalled failed")):
        p = _command(sub, name, help_text)
        p.add_argument("--status", choices=statuses.split(), help="only documents in this state")
        p.add_argument("--kind", help="文种, e.g. 通知")
        p.add_argument("--overdue", action="store_true", help="only overdue documents (超期)")
        p.add_argument("--from" if name == "inbox" else "--to", dest="unit", metavar="UNIT",
                       help="sending unit" if name == "inbox" else "recipient unit")
        p.add_argument("--limit", type=int, default=None, help=f"items per page (default {PAGE})")
        p.add_argument("--after", metavar="N", help="the next page: the number printed under the previous one")
        p.set_defaults(func=func, command_name=name)

    for name, help_text, func in (("show", "a document: its metadata; for one received, its verification and attachments; "
                                   "for one sent, each recipient's progress", _show),
                                  ("sign-for", "签收 a received document", _sign_for),
                                  ("register", "登记 a signed-for document", _register),
                                  ("track", "who has signed for a sent document (跟踪), and where each message "
                                   "not yet delivered waits (去向)", _track)):
        p = _command(sub, name, help_text)
        p.add_argument("doc_id", metavar="ID", help=DOC_ID_HELP)
        p.set_defaults(func=func)

    p = _command(sub, "return", "退回 a received document with a reason")
    p.add_argument("doc_id", metavar="ID", help=DOC_ID_HELP)
    p.add_argument("--reason", required=True, help="退回理由 (1–500 characters)")
    p.set_defaults(func=_return)

    p = _command(sub, "add-recipient", "补发: send a document already sent to more units (the same sealed package)")
    p.add_argument("doc_id", metavar="ID", help=DOC_ID_HELP)
    p.add_argument("--unit", action="append", dest="units", metavar="UNIT", required=True,
                   help="a unit to add (repeat for several)")
    p.set_defaults(func=_add_recipient)

    for name, help_text, func in (("recall", "撤回 a sent document from recipients not yet signed for", _recall),
                                  ("urge", "催办 recipients that have not signed for", _urge)):
        p = _command(sub, name, help_text)
        p.add_argument("doc_id", metavar="ID", help=DOC_ID_HELP)
        p.add_argument("--unit", action="append", dest="units", metavar="UNIT", help="only this recipient")
        p.set_defaults(func=func)


def _submission_options(p: argparse.ArgumentParser, meta_help: str = "META.json: kind, title, issuers, to, cc, …"):
    p.add_argument("--meta", required=True, type=Path, help=meta_help)
    p.add_argument("--body", required=True, type=Path, help="the document PDF (正文)")
    p.add_argument("--attach", action="extend", nargs="+", default=[], type=Path, metavar="FILE",
                   help="attachment(s) (附件), in order; repeat the option or list several files")


ENVIRONMENT = """environment:
  GWX_NODE   the node's local API, e.g. http://127.0.0.1:7080 (what --node defaults to)
  GWX_TOKEN  your API token itself (not a file); --token-file FILE reads it from a file instead"""


def _command(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    add_common_options(p)
    return p


def add_common_options(p: argparse.ArgumentParser) -> None:
    """--node, --token-file and --json, and the environment they default from (in --help)."""
    p.epilog = ENVIRONMENT
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--node", default=os.environ.get("GWX_NODE") or DEFAULT_NODE,
                   help=f"the node's local API (default: $GWX_NODE, else {DEFAULT_NODE})")
    p.add_argument("--token-file", metavar="FILE",
                   help="a file holding your API token (default: the token in $GWX_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the node's JSON answer")


def client_for(args: argparse.Namespace) -> ApiClient:
    return ApiClient(args.node, read_token(args.token_file))


def api_path(*segments: str) -> str:
    return "/api/v1/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)


def emit_json(value: Any) -> int:
    print(json.dumps(value, ensure_ascii=False, indent=2))
    return 0


# --- commands -----------------------------------------------------------------------------------
def _send(args: argparse.Namespace) -> int:
    try:
        meta = args.meta.read_bytes()
        for path in (args.body, *args.attach):
            if not path.is_file():
                raise BadInput(f"{path} is not a file")
    except OSError as exc:
        raise BadInput(f"cannot read {args.meta}: {exc.strerror}") from None
    body_type = "application/ofd" if args.body.suffix.lower() == ".ofd" else "application/pdf"
    files = [("body", args.body, args.body.name, body_type)]
    files += [("attachment", p, p.name, "application/octet-stream") for p in args.attach]
    stream = MultipartStream([("meta", meta, "application/json")], files)
    progress = _Progress(len(stream)) if len(stream) > PROGRESS_MIN_BYTES and sys.stderr.isatty() else None
    if progress:
        stream._progress = progress
    try:
        path = api_path("inbox", args.forwarding, "forward") if args.forwarding else "/api/v1/documents"
        result = client_for(args).post_multipart(path, stream)
    finally:
        if progress:
            progress.done()
    if args.json:
        return emit_json(result)
    print(f"已发送 {result['doc_id']}")
    _print_recipients(result["recipients"])
    if result.get("forwarded"):
        _print_forwarded(result["forwarded"])
    return 0


def _list_query(args: argparse.Namespace) -> dict[str, Any]:
    return {"status": args.status, "kind": args.kind, "overdue": "true" if args.overdue else None,
            "unit": args.unit, "limit": args.limit, "after": args.after}


def _inbox(args: argparse.Namespace) -> int:
    items = client_for(args).get("/api/v1/inbox", _list_query(args))
    if args.json:
        return emit_json(items)
    rows = [[i["doc_id"], " ".join(filter(None, (i.get("from_unit_name"), i["from_unit"]))), i["title"], i["kind"], i.get("urgency") or "",
             _status(i, " 已督办" if i.get("escalated_at") else ""), _when(i.get("deadline")),
             _when(i.get("received_at"))] for i in items]
    print(render_table(["公文标识", "来文单位", "标题", "文种", "紧急程度", "状态", "办理时限", "收到时间"], rows))
    _next_page(args, items)
    return 0


def _outbox(args: argparse.Namespace) -> int:
    items = client_for(args).get("/api/v1/outbox", _list_query(args))
    if args.json:
        return emit_json(items)
    rows = [[i["doc_id"], i["title"], i["kind"], i.get("doc_number") or "", _counts(i.get("counts", {})),
             Red("超期") if i.get("overdue") else "", _when(i.get("created_at"))] for i in items]
    print(render_table(["公文标识", "标题", "文种", "发文字号", "进度", "", "发文时间"], rows))
    _next_page(args, items)
    return 0


def _next_page(args: argparse.Namespace, items: list[dict[str, Any]]) -> None:
    """Under a full page, the command for the next one (``after`` is the node's row number)."""
    if items and len(items) >= (args.limit or PAGE) and items[-1].get("id") is not None:
        again = [args.command_name, *(f"--{k} {v}".rstrip() for k, v in _shown_filters(args).items())]
        print(f"（本页 {len(items)} 条；下一页：gwx {' '.join(again)} --after {items[-1]['id']}）")


def _shown_filters(args: argparse.Namespace) -> dict[str, Any]:
    unit_option = "from" if args.command_name == "inbox" else "to"
    shown = {"status": args.status, "kind": args.kind, unit_option: args.unit, "limit": args.limit}
    out = {k: v for k, v in shown.items() if v is not None}
    return {**out, **({"overdue": ""} if args.overdue else {})}


def _show(args: argparse.Namespace) -> int:
    doc = client_for(args).get(api_path("inbox", args.doc_id))
    if args.json:
        return emit_json(doc)
    meta = doc.get("metadata", {})
    if "recipients" in doc:  # one of our own sent documents: its metadata, then who has done what
        sent = doc["doc"]
        fields = [("公文标识", sent["doc_id"]), ("标题", sent["title"]), ("文种", sent["kind"]),
                  ("发文字号", meta.get("doc_number") or ""), ("发文机关", "、".join(meta.get("issuers", []))),
                  ("紧急程度", meta.get("urgency") or ""), ("密级", meta.get("classification") or ""),
                  ("成文日期", meta.get("written_on") or ""), ("办理时限", _when(sent.get("deadline"))),
                  ("附注", meta.get("attachments_note") or "")]
        print(render_table(["项目", "内容"], [[k, v] for k, v in fields if v]))
        print()
        _print_tracking(doc)
        return 0
    fields = [("公文标识", doc["doc_id"]), ("标题", doc["title"]), ("文种", doc["kind"]),
              ("发文字号", meta.get("doc_number") or ""), ("发文机关", "、".join(meta.get("issuers", []))),
              ("紧急程度", doc.get("urgency") or ""), ("成文日期", meta.get("written_on") or ""),
              ("办理时限", _when(doc.get("deadline"))), ("状态", doc["status_label"]),
              ("签收人", doc.get("signed_by") or ""), ("签收时间", _when(doc.get("signed_at"))),
              ("退回理由", doc.get("return_reason") or ""), ("催办次数", str(doc.get("urge_count", 0))),
              ("验证", _verification(doc.get("verification")))]
    print(render_table(["项目", "内容"], [[k, v] for k, v in fields if v]))
    attachments = doc.get("attachments") or []
    if attachments:
        print()
        print(render_table(["附件", "大小", "类型"], [[a.get("name", ""), str(a.get("size", "")),
                                                    a.get("media_type") or ""] for a in attachments]))
    return 0


def _inbox_action(args: argparse.Namespace, action: str, body: dict[str, Any] | None, done: str) -> int:
    item = client_for(args).post(api_path("inbox", args.doc_id, action), body)
    if args.json:
        return emit_json(item)
    print(f"{done} {item['doc_id']}  {item['title']}  ({item['status_label']})")
    return 0


def _sign_for(args: argparse.Namespace) -> int:
    return _inbox_action(args, "sign-for", None, "已签收")


def _return(args: argparse.Namespace) -> int:
    return _inbox_action(args, "return", {"reason": args.reason}, "已退回")


def _register(args: argparse.Namespace) -> int:
    return _inbox_action(args, "register", None, "已登记")


def _outbox_action(args: argparse.Namespace, action: str) -> int:
    """撤回/催办. Refused for every recipient: the node's typed error (DOC_NO_ELIGIBLE_RECIPIENT).
    Refused for some: the tracking, the 未执行 lines, and the exit status of a conflict (PARTLY_DONE)."""
    body = {"units": args.units} if args.units else {}
    tracking = client_for(args).post(api_path("outbox", args.doc_id, action), body)
    if args.json:
        emit_json(tracking)
    else:
        _print_tracking(tracking)
    refused = tracking.get("refused") or []
    if refused and not args.json:
        print(f"gwx: DOC_PARTLY_DONE: {'撤回' if action == 'recall' else '催办'} not done for "
              f"{len(refused)} recipient(s), listed above", file=sys.stderr)
    return PARTLY_DONE if refused else 0


def _add_recipient(args: argparse.Namespace) -> int:
    tracking = client_for(args).post(api_path("outbox", args.doc_id, "recipients"), {"units": args.units})
    return emit_json(tracking) if args.json else _print_tracking(tracking)


def _recall(args: argparse.Namespace) -> int:
    return _outbox_action(args, "recall")


def _urge(args: argparse.Namespace) -> int:
    return _outbox_action(args, "urge")


def _track(args: argparse.Namespace) -> int:
    tracking = client_for(args).get(api_path("outbox", args.doc_id))
    return emit_json(tracking) if args.json else _print_tracking(tracking)


# --- presentation -------------------------------------------------------------------------------
def _print_tracking(tracking: dict[str, Any]) -> int:
    doc = tracking["doc"]
    head = f"{doc['title']}  {doc.get('doc_number') or ''}  [{doc['kind']}]  {doc['doc_id']}"
    if doc.get("deadline"):
        head += f"  办理时限 {_when(doc['deadline'])}"
    print(head)
    _print_recipients(tracking["recipients"])
    for r in tracking["recipients"]:  # not yet delivered: where its message waits (asked along the route)
        if r.get("where"):
            print(f"去向 {r['unit']}：{r['where']['line']}")
    print(_counts(doc.get("counts", {})))
    if tracking.get("forwarded"):
        _print_forwarded(tracking["forwarded"])
    for f in tracking.get("forwarded_on") or []:  # our document forwarded by a recipient (转发告知)
        print(f"转发 by {f.get('unit_name') or f['unit']} ({f['unit']}) to {f['count']} units under cover "
              f"{f['cover_doc_id']}  {_when(f.get('at'))}  {f.get('by') or ''}".rstrip())
    for refusal in tracking.get("refused") or []:  # recipients the action could not apply to
        print(f"refused for {refusal.get('unit')}: {refusal.get('code')}: {refusal.get('message')}", file=sys.stderr)
    return 0


def _print_forwarded(forwarded: dict[str, Any]) -> None:
    print(f"转发 {forwarded['doc_id']}  {forwarded.get('title') or ''}  (来自 {forwarded.get('from_unit') or ''})")
    _print_recipients([{**r, "role": "转发"} for r in forwarded["recipients"]])


def _print_recipients(recipients: list[dict[str, Any]]) -> None:
    rows = [[r["unit"], r.get("unit_name") or "", r["role"],
             _status(r), _who(r),
             _when(r.get("when")), r.get("reason") or "", str(r.get("urge_count", 0))] for r in recipients]
    print(render_table(["单位代码", "单位名称", "角色", "状态", "经办人", "时间", "原因", "催办"], rows))


class Red(str):
    """A cell shown in red when stdout is a terminal (超期, 督办中); plain text otherwise."""


def _status(row: dict[str, Any], suffix: str = "") -> str:
    """The status label; an overdue row's with 超期 and how many working days, red on a terminal."""
    if not row.get("overdue"):
        return row["status_label"] + suffix
    days = row.get("overdue_working_days") or 0
    return Red(f"{row['status_label']} 超期" + (f"{days}个工作日" if days else "") + suffix)


# ``who`` is whoever moved the row last: the recipient's clerk for 签收/退回, our own for 撤回.
_ACTS = {"signed_for": "签收", "returned": "退回", "recalled": "撤回"}


def _who(recipient: dict[str, Any]) -> str:
    who, act = recipient.get("who") or "", _ACTS.get(recipient.get("status", ""))
    return f"{who}（{act}）" if who and act else who


# The node's own labels (exchange_protocol.states), so the counts line and the rows say the same words.
_STATUS_LABELS = {s.value: s.label for s in SenderStatus}


def _counts(counts: dict[str, int]) -> str:
    return "  ".join(f"{_STATUS_LABELS.get(k, k)} {v}" for k, v in counts.items() if v)


def _when(value: str | None) -> str:
    """An ISO 8601 time in this machine's time zone (``TZ``), to the minute, with its UTC offset —
    a 17:00+08:00 办理时限 reads "09:00 +00:00" on a UTC machine, never a bare "09:00" (``--json``
    keeps the node's value whole)."""
    if not value:
        return ""
    try:
        local = dt.datetime.fromisoformat(value).astimezone()
    except ValueError:
        return value[:16].replace("T", " ")
    offset = local.strftime("%z")  # +0800 (Python 3.11 has no %:z)
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def _verification(report: Any) -> str:
    if not isinstance(report, dict):
        return ""
    ok = report.get("ok")
    return ("通过" if ok else "未通过" if ok is False else "") + (f" ({report['summary']})" if report.get("summary") else "")


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide and full-width characters 2, combining marks 0."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _clean(cell: str) -> str:
    # A value from a remote party must not move the cursor or break the row.
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in str(cell))


def render_table(header: list[str], rows: list[list[str]]) -> str:
    cells = [[_clean(c) for c in row] for row in [header, *rows]]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(header))]
    red = [[isinstance(c, Red) for c in row] for row in [header, *rows]] if sys.stdout.isatty() else None
    lines = []
    for n, row in enumerate(cells):
        padded = [c + " " * (w - display_width(c)) for c, w in zip(row, widths, strict=True)]
        if red is not None:  # escape codes after padding: they take no columns
            padded = [f"\033[31m{c}\033[0m" if red[n][i] else c for i, c in enumerate(padded)]
        lines.append("  ".join(padded).rstrip())
    if not rows:
        lines.append("(无)")
    return "\n".join(lines)


class _Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.shown = -1

    def __call__(self, sent: int, total: int) -> None:
        percent = sent * 100 // max(total, 1)
        if percent != self.shown:
            self.shown = percent
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\r上传 [{bar:<25}] {percent:3d}%  {sent >> 20}/{total >> 20} MiB")
            sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
