"""The console's page timings for bench/console.py: real pages over HTTP from a real node (issue 10, Figures).

A node hosting the city office and one county office is provisioned (``node.localnet``: our CA,
``gwx node run`` as a child process); the city sends one real sealed 通知 to the county through the
local API. The node is stopped, its store filled as bench/console.py fills one (the county's
100,000 received rows, each with that 通知's real verification report as the processor stored it —
what a search in the 发文字号 may read —, the city's sent ledger) and that 通知 given 3,599 more recipients with mixed
statuses — a 通知 to a whole city's units — and the node started again on it. Users are made with
``gwx user add``; each signs in through the console's form like a browser (cookies kept by hand:
the listener is plain HTTP on loopback).

Each page is asked for ``rounds`` times in turn after one warm-up round; the figure is the node's
own time for it (``Server-Timing: app;dur=…``, set by the local API's access-log middleware), and
the wall time seen by the client beside it. Pages: the county's 收文 folders (待签收, the busiest;
全部; 已撤回, which is empty — every row of the unit must be passed over to prove it; 超期), a
search in title and 发文字号 that matches and one that matches nothing, the home page's folder
counts, the city's 发文 list, and the 3,600-recipient 通知 (its 办理时限 passed, so unsigned units are
late): its document page, its track page (``/console/doc/{id}/track``, a page of 100: the first,
the 超期 filter, one in the middle) and its tracking list through the API (``GET /api/v1/outbox/{id}``,
with and without the recipients).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path

from node.config import load_config
from node.localnet import LocalNetwork, LocalNode, notice_pdf, send_document, wait_for
from node.store import OutboxRecipient
from node.store.opener import open_store
from pki.unit_code import make_unit_code

PASSWORD = "correct horse 42"
WIDE = 3_600  # recipients of the tracked 通知
DEADLINE_AHEAD = dt.timedelta(seconds=30)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_TIMING = re.compile(r"app;dur=([0-9.]+)")
REPO = Path(__file__).resolve().parent.parent


class PageClient:
    """One signed-in browser: a keep-alive connection, the session cookie, the server time of each page."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.origin = url.rstrip("/")
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, float, float, bytes]:
        """(status, server ms, wall ms, body)."""
        sent = {**headers} if headers else {}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=sent)
        response = self.conn.getresponse()
        data = response.read()
        wall = (time.perf_counter() - started) * 1000
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        timing = _TIMING.search(response.headers.get("Server-Timing", ""))
        return response.status, float(timing.group(1)) if timing else float("nan"), wall, data

    def sign_in(self, login: str) -> None:
        _, _, _, page = self.request("GET", "/console/sign-in")
        form = urllib.parse.urlencode({"csrf": _CSRF.search(page.decode()).group(1), "login": login,
                                       "password": PASSWORD, "next": "/console/"}).encode()
        status, _, _, _ = self.request("POST", "/console/sign-in", form, {
            "Content-Type": "application/x-www-form-urlencoded", "Origin": self.origin})
        if status != 303:
            raise SystemExit(f"signing in as {login} answered {status}")


def add_user(node: LocalNode, login: str, name: str, unit: str, work: Path) -> None:
    secret = work / f"{login}.password"
    secret.write_text(PASSWORD + "\n", "utf-8")
    subprocess.run([sys.executable, "-m", "node.cli.main", "user", "add", "--dir", str(node.directory), "--login",
                    login, "--name", name, "--role", "clerk", "--password-file", str(secret), "--unit", unit],
                   check=True, cwd=REPO, capture_output=True, timeout=120)


def _meta(city: str, county: str, deadline: dt.datetime) -> dict:
    return {"kind": "通知", "title": "关于做好全市冬季安全生产工作的通知", "doc_number": "临政办发〔2026〕900号",
            "issuers": [city], "signers": [], "to": [county], "cc": [], "written_on": "2026-11-20",
            "urgency": None, "classification": "非密", "deadline": deadline.isoformat(), "copy_number": None,
            "printed_by": "临沂市人民政府办公室", "printed_on": "2026-11-20", "note": None, "attachments_note": None,
            "id": None}


def _unit_at(k: int) -> str:
    """The ``k``-th added recipient's unit code (valid: its check character computed)."""
    return make_unit_code(f"11371300MC{k:07d}")


def wide_recipients(count: int) -> list[OutboxRecipient]:
    """``count`` more units of the city (valid codes), as a 通知 to all of them stands a while after
    sending: most signed for, some returned, the rest delivered and waiting."""
    at = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)
    rows = []
    for k in range(count):
        unit = _unit_at(k)
        roll = k % 10
        status = dict(status="signed_for", who="王五", when=at) if roll < 7 else (
            dict(status="returned", who="王五", when=at, reason="不属本单位职责") if roll == 7 else dict(status="delivered"))
        rows.append(OutboxRecipient(unit=unit, role="主送" if k % 4 else "抄送", destination_node=f"node-{k % 160}",
                                    **status))
    return rows


async def _widen(data_dir: Path, doc_id: str, count: int, clock: Callable[[], dt.datetime]) -> None:
    store = await open_store(data_dir, clock=clock)
    try:
        recipients = wide_recipients(count)
        for start in range(0, count, 500):
            async with store.transaction() as tx:
                await store.messages.add_recipients(doc_id, recipients[start:start + 500], actor="bench", tx=tx)
    finally:
        await store.close()


async def _report_of(data_dir: Path, doc_id: str, unit: str) -> dict:
    store = await open_store(data_dir, clock=lambda: dt.datetime.now(dt.UTC))
    try:
        return (await store.messages.get_inbox(doc_id, unit)).verification
    finally:
        await store.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def time_pages(work: Path, fill: Callable[[Path, dict], None], *, city: str, county: str, names: dict[str, str],
               documents: int, rounds: int, hit: str) -> tuple[dict, list[tuple[str, float, float, float]], int]:
    """Provision, fill (``fill(data_dir)``), serve and time (``hit``: a search that finds one of the
    county's rows); returns (figures, table rows
    (page, server p50, server p99, wall p50), rows in the tracked document's list)."""
    net = LocalNetwork(work / "net")
    node = net.add_node("city", [{"code": city, "name": names[city]}, {"code": county, "name": names[county]}])
    net.connect_all()
    pdf = work / "notice.pdf"
    pdf.write_bytes(notice_pdf("关于做好全市冬季安全生产工作的通知"))
    try:
        net.start(node)
        # A 办理时限 the node (real clock) refuses if already passed, so one just ahead: it has passed
        # before the pages are timed (the fill takes longer; waited for below otherwise), and the
        # 3,600 recipients not yet signed are then judged late — the working-day calendar at work.
        deadline = dt.datetime.now(dt.UTC).replace(microsecond=0) + DEADLINE_AHEAD
        doc_id = send_document(node, city, _meta(city, county, deadline), pdf)["doc_id"]
        wait_for(lambda: doc_id.encode() in node.clerk(county).request("GET", "/api/v1/inbox")[2],
                 what="the 通知 in the county's inbox")
        net.stop(node)
        data_dir = load_config(node.directory).data_dir
        verification = asyncio.run(_report_of(data_dir, doc_id, county))
        print(f"each received row carries the real 通知's verification report ({len(json.dumps(verification)):,}"
              " bytes of JSON)", flush=True)
        fill(data_dir, verification)
        asyncio.run(_widen(data_dir, doc_id, WIDE - 1, lambda: dt.datetime.now(dt.UTC)))
        add_user(node, "lisi", "李四", county, work)
        add_user(node, "zhang", "张三", city, work)
        net.start(node, timeout=180)
        time.sleep(max(0.0, (deadline - dt.datetime.now(dt.UTC)).total_seconds() + 1))
        return _measure(node, doc_id, city, documents, rounds, hit)
    except Exception:
        print(f"--- node log\n{net.log_tail(node, 30)}", file=sys.stderr)
        raise
    finally:
        net.stop_all()


def _measure(node: LocalNode, doc_id: str, city_code: str, documents: int, rounds: int,
             hit: str) -> tuple[dict, list[tuple[str, float, float, float]], int]:
    url = node.ready["local_url"]
    county, city = PageClient(url), PageClient(url)
    county.sign_in("lisi")
    city.sign_in("zhang")
    token = {"Authorization": f"Bearer {node.tokens[f'clerk-{city_code}']}"}
    api = PageClient(url)
    doc = urllib.parse.quote(doc_id, safe="")
    q = urllib.parse.quote
    pages: dict[str, tuple[PageClient, str, dict | None]] = {
        "inbox (待签收)": (county, "/console/inbox?folder=pending", None),
        "inbox (待签收, page 2)": (county, f"/console/inbox?folder=pending&after={documents // 2}", None),
        "inbox (全部)": (county, "/console/inbox?folder=all", None),
        "inbox (已撤回, empty)": (county, "/console/inbox?folder=recalled", None),
        "inbox (超期)": (county, "/console/inbox?folder=overdue", None),
        "search (a hit)": (county, "/console/inbox?folder=all&q=" + q(hit), None),
        "search (no hit)": (county, "/console/inbox?folder=all&q=" + q("不存在的标题"), None),
        "home (folder counts)": (county, "/console/", None),
        "outbox (发文)": (city, "/console/outbox", None),
        "document page (of 3,600 recipients)": (city, f"/console/doc/{doc}", None),
        "track page (first 100 of 3,600)": (city, f"/console/doc/{doc}/track", None),
        "track page (超期, first 100)": (city, f"/console/doc/{doc}/track?status=overdue", None),
        "track page (page 19)": (city, f"/console/doc/{doc}/track?after=" + q(_unit_at(1800)), None),
        "API tracking list (3,600)": (api, f"/api/v1/outbox/{doc}", token),
        "API tracking counts": (api, f"/api/v1/outbox/{doc}?recipients=false", token),
    }
    server: dict[str, list[float]] = {name: [] for name in pages}
    wall: dict[str, list[float]] = {name: [] for name in pages}
    listed = late = 0
    for round_ in range(rounds + 1):
        for name, (client, path, headers) in pages.items():
            status, server_ms, wall_ms, body = client.request("GET", path, headers=headers)
            if status != 200:
                raise SystemExit(f"{name}: {path} answered {status}: {body[:300]!r}")
            if name == "document page (of 3,600 recipients)":
                text = body.decode()  # its first units listed, and the number of them all
                listed = text.count('data-label="单位"') if "共 3600 个单位" in text else 0
            if name == "track page (超期, first 100)":
                late = body.decode().count('class="overdue"')
            if round_:  # the first round warms caches (the body's pages rendered once, SQLite's pages read)
                server[name].append(server_ms)
                wall[name].append(wall_ms)
    rows = [(name, statistics.median(server[name]), percentile(server[name], 0.99), statistics.median(wall[name]))
            for name in pages]
    by = {name: (p50, p99) for name, p50, p99, _ in rows}
    figures = {
        "inbox_page_ms_p50": round(by["inbox (待签收)"][0], 1), "inbox_page_ms_p99": round(by["inbox (待签收)"][1], 1),
        "inbox_all_page_ms_p50": round(by["inbox (全部)"][0], 1),
        "inbox_empty_folder_ms_p50": round(by["inbox (已撤回, empty)"][0], 1),
        "inbox_overdue_page_ms_p50": round(by["inbox (超期)"][0], 1),
        "doc_page_ms_p50": round(by["document page (of 3,600 recipients)"][0], 1),
        "track_page_ms_p50": round(by["track page (first 100 of 3,600)"][0], 1),
        "track_overdue_page_ms_p50": round(by["track page (超期, first 100)"][0], 1),
        "track_later_page_ms_p50": round(by["track page (page 19)"][0], 1),
        "track_api_ms_p50": round(by["API tracking list (3,600)"][0], 1),
        "counts_page_ms_p50": round(by["home (folder counts)"][0], 1),
        "outbox_page_ms_p50": round(by["outbox (发文)"][0], 1),
        "search_ms_p50": round(by["search (a hit)"][0], 1), "search_miss_ms_p50": round(by["search (no hit)"][0], 1),
        "page_rounds": rounds,
    }
    if not late:
        raise SystemExit("the track page's 超期 filter listed no late recipient: the 办理时限 was not judged")
    return figures, rows, listed
