"""Webhook latency: from a document's arrival at the node to the webhook receiver having it.

Two real nodes on loopback (``node.localnet``): the city sends N sealed 通知 (``--quick``: 20;
default 200), one every ``--interval`` seconds (0.25), to a unit of the county; the county has a
webhook for that unit's ``document.received`` (``gwx webhook add``, as an operator does), pointed
at an aiohttp receiver in this process that verifies every signature
(:func:`adapters.webhooks.signing.verify`) and notes when each event first arrived.

Measured per document, from the county's own records (read-only from its database):

* ``webhook_p50_s`` / ``webhook_p99_s`` — the envelope's acceptance at the county (``received``
  row: the document has arrived at the node) → the receiver holds the verified event. It includes
  the county's processing of the document (PAdES validation, the inbox row) and the adapter's
  fan-out and POST.
* ``webhook_after_inbox_p50_s`` / ``_p99_s`` — the commit of the inbox row (the time of the
  ``inbox.add`` audit event the adapters follow) → the receiver: the adapters' own share.

Written as a function (:func:`measure_webhooks`) so ``bench/adapters.py`` can run it beside its SOAP
figures; run alone it prints its table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository, not bench/, goes first on sys.path
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from aiohttp import web

from adapters.webhooks.signing import verify
from node.cli.main import main as gwx_main
from node.config import load_config
from node.localnet import LocalNetwork, notice_pdf, send_document, wait_for
from pki.unit_code import make_unit_code

CITY_OFFICE = make_unit_code("11430700MB0000001")   # 常德市人民政府办公室
COUNTY_OFFICE = make_unit_code("11430702MB0000001")  # 武陵区人民政府办公室


class _Receiver:
    """The webhook receiver: verifies, keeps the first arrival time of each document."""

    def __init__(self) -> None:
        self.secret = ""
        self.arrived: dict[str, float] = {}
        self.refused = 0
        self._seen: set[str] = set()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self.port = asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(30)

    async def _open(self) -> int:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        try:
            event = verify(self.secret, request.headers, body, now, seen=self._seen)
        except Exception:
            self.refused += 1
            return web.Response(status=401)
        self.arrived.setdefault(event["doc_id"], now)
        return web.Response(text="ok")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _epoch(db_time: str) -> float:
    return dt.datetime.strptime(db_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


def _meta(n: int) -> dict:
    return {"kind": "通知", "title": f"关于做好冬季安全生产工作的通知（第{n}号）", "doc_number": f"常政办发〔2026〕{n}号",
            "issuers": [CITY_OFFICE], "signers": [], "to": [COUNTY_OFFICE], "cc": [], "written_on": "2026-11-20",
            "urgency": None, "classification": "非密", "deadline": None, "copy_number": None,
            "printed_by": "常德市人民政府办公室", "printed_on": "2026-11-20", "note": None,
            "attachments_note": None, "id": None}


def measure_webhooks(base: Path, documents: int, interval: float = 0.25) -> dict[str, float]:
    """Run the measurement in ``base``; returns its figures (seconds)."""
    net = LocalNetwork(base / "network")
    city = net.add_node("city", [{"code": CITY_OFFICE, "name": "常德市人民政府办公室"}])
    county = net.add_node("wuling", [{"code": COUNTY_OFFICE, "name": "武陵区人民政府办公室"}])
    net.connect_all()
    receiver = _Receiver()
    try:
        net.start_all()
        added = base / "webhook.json"
        with open(added, "w") as out:
            saved, sys.stdout = sys.stdout, out
            try:
                code = gwx_main(["webhook", "add", "--dir", str(county.directory), "--unit", COUNTY_OFFICE,
                                 "--url", f"http://127.0.0.1:{receiver.port}/hook", "--event", "document.received",
                                 "--json"])
            finally:
                sys.stdout = saved
        if code != 0:
            raise RuntimeError("gwx webhook add failed")
        receiver.secret = json.loads(added.read_text())["secret"]
        body = base / "body.pdf"
        body.write_bytes(notice_pdf("关于做好冬季安全生产工作的通知", issuer="常德市人民政府办公室"))
        time.sleep(1.5)  # the county picks the subscription up within a second
        doc_ids = []
        for n in range(1, documents + 1):
            started = time.monotonic()
            doc_ids.append(send_document(city, CITY_OFFICE, _meta(n), body)["doc_id"])
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
        wait_for(lambda: len(receiver.arrived) >= documents, 120 + documents, interval=0.2,
                 what="every event at the webhook receiver")
        db = load_config(county.directory).data_dir / "gwx.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            # the envelope's acceptance, and the commit of the inbox row (its audit event's time)
            rows = conn.execute(
                "SELECT i.doc_id, r.received_at, a.at FROM inbox i JOIN received r ON r.message_id = i.message_id"
                " JOIN audit a ON a.doc_id = i.doc_id AND a.action = 'inbox.add'"
                " AND json_extract(a.subjects, '$.unit') = i.unit_code WHERE i.unit_code = ?",
                (COUNTY_OFFICE,)).fetchall()
        finally:
            conn.close()
        from_arrival = [receiver.arrived[d] - _epoch(accepted) for d, accepted, _ in rows if d in receiver.arrived]
        from_inbox = [receiver.arrived[d] - _epoch(inbox) for d, _, inbox in rows if d in receiver.arrived]
    finally:
        net.stop_all()
        receiver.stop()
    if len(from_arrival) != documents or receiver.refused:
        raise RuntimeError(f"{len(from_arrival)} of {documents} measured, {receiver.refused} refused")
    return {"webhook_p50_s": round(_quantile(from_arrival, 0.5), 3),
            "webhook_p99_s": round(_quantile(from_arrival, 0.99), 3),
            "webhook_after_inbox_p50_s": round(_quantile(from_inbox, 0.5), 3),
            "webhook_after_inbox_p99_s": round(_quantile(from_inbox, 0.99), 3),
            "webhook_mean_s": round(statistics.fmean(from_arrival), 3), "webhook_documents": documents}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 documents instead of 200")
    parser.add_argument("--documents", type=int, help="how many documents (overrides --quick)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between submissions (default 0.25)")
    args = parser.parse_args()
    documents = args.documents or (20 if args.quick else 200)
    with tempfile.TemporaryDirectory(prefix="gwx-bench-webhook-") as tmp:
        figures = measure_webhooks(Path(tmp), documents, args.interval)
    print(f"{'documents':28} {documents}")
    print(f"{'arrival → receiver p50':28} {figures['webhook_p50_s']:.3f} s")
    print(f"{'arrival → receiver p99':28} {figures['webhook_p99_s']:.3f} s")
    print(f"{'inbox row → receiver p50':28} {figures['webhook_after_inbox_p50_s']:.3f} s")
    print(f"{'inbox row → receiver p99':28} {figures['webhook_after_inbox_p99_s']:.3f} s")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
