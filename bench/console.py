"""The console's figures on a store of 100,000 documents: the 台账 part (issue 10, Figures).

The store is filled through its own interfaces (``messages.add_outbox`` and ``messages.add_inbox``,
500 rows a transaction, audit events included), as a city and its counties exchange: the city
office sends N/12 documents (rounded up), each to a dozen county offices (3 主送, 9 抄送), so its
sent ledger has N rows (up to 11 more); N documents are received from the city and from the counties,
spread over the twelve county offices as on a node hosting them all: one big unit (兰山区, 60 %, its
received ledger the one exported) and the eleven others skewed (11:10:…:1) — so an index without
its unit prefix would cost here what it costs on a real node. Times spread over the year before
the run; half carry a 办理时限 of 15 days. As on a real node, older documents are settled (95 %
signed for, 5 % returned, a few stragglers still waiting and late) and the waiting ones are mostly
recent (30 % of the last three weeks), their 办理时限 mostly still ahead. Every row names one small
package blob (the ledger never opens packages).

Then each export — received and sent, XLSX and CSV — runs in a child process of its own
(``node.documents.ledger.open_export``, the document service's implementation, with the clerk of
the unit as principal, its chunks from ``node.documents.ledger_files.csv_chunks`` or
``ledger_xlsx_stream.xlsx_chunks`` — what the local API sends — written to a file), which reports
its rows, time, time to its first byte and peak RSS (``ru_maxrss``); a child that only opens the
store gives the baseline.
The statistics (received per month, and sent per month split by county) are timed likewise, and the ledgers' query plans printed.
``--quick`` uses 5,000 documents. A readable table first; the last line is one JSON object.

Then the pages (:mod:`bench.console_pages`): a real node's store filled the same way (a second fill,
so the ledger's figures stay those of this store alone), one real sealed 通知 to 3,600 units, and the
console's pages asked for over HTTP, each timed by the node (``Server-Timing``): ``inbox_page_ms_p50``,
``inbox_page_ms_p99``, ``track_page_ms_p50`` (the 通知's track page, its first 100 of 3,600 recipients,
some late), ``doc_page_ms_p50`` (its document page: its first 50 units and the count of all 3,600),
``counts_page_ms_p50``, ``search_ms_p50`` … ``--part ledger`` or ``--part pages`` runs one half.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, bench/ is sys.path[0]; put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from node.api.auth import Principal  # noqa: E402
from node.console.pages import DOCUMENT_PAGE_RECIPIENTS  # noqa: E402
from node.store import InboxRow, LedgerQuery, OutboxDocument, OutboxRecipient, RegisterFacts  # noqa: E402
from node.store.opener import open_store  # noqa: E402
from pki.unit_code import make_unit_code  # noqa: E402

CITY = "91350100M000100Y43"
COUNTY = "11100000000013127D"
# The eleven other counties of the city (valid codes: their check character computed).
OTHER_COUNTIES = [make_unit_code(f"11371300MB{k:07d}") for k in range(1, 12)]
COUNTIES = [COUNTY, *OTHER_COUNTIES]
NAMES = {CITY: "临沂市人民政府办公室", COUNTY: "兰山区人民政府办公室"}
BATCH = 500
NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


def _names(code: str) -> str | None:
    return NAMES.get(code)


async def fill(data_dir: Path, n: int, verification: dict | None = None) -> None:
    """``verification``: the report each received row carries (a real one in the pages' store)."""
    store = await open_store(data_dir, clock=lambda: NOW)
    try:
        digest = (await store.blobs.put(b"a small stand-in for a sealed package")).digest
        for start in range(0, n, BATCH):
            async with store.transaction() as tx:
                for i in range(start, min(start + BATCH, n)):
                    if i % len(COUNTIES) == 0:  # one document to the twelve counties: twelve sent rows
                        await _sent(store, tx, digest, i, n)
                    await _received(store, tx, digest, i, n, verification)
    finally:
        await store.close()


def _when(i: int, n: int) -> dt.datetime:
    return NOW - dt.timedelta(days=365) + dt.timedelta(seconds=i * 365 * 86400 // n)


RECENT = dt.timedelta(days=21)  # documents younger than this are often still waiting
DEADLINE_AFTER = dt.timedelta(days=15)  # the 办理时限 given to half the documents
BIG_SHARE = 6  # of 10 received documents go to the big unit (COUNTY)
_SKEW_INDEX = [k for k, w in enumerate(range(11, 0, -1)) for _ in range(w)]  # 66 slots: county k has 11 − k


def receiver(i: int) -> str:
    """The county office that receives document ``i``: COUNTY for 60 %, the others skewed."""
    if i % 10 < BIG_SHARE:
        return COUNTY
    return OTHER_COUNTIES[_SKEW_INDEX[(i * 2654435761 >> 7) % len(_SKEW_INDEX)]]


def searched_title(n: int) -> str:
    """A piece of the title of one document COUNTY received (about three quarters in): a search hit."""
    i = (n * 3 // 4) // 10 * 10  # i % 10 == 0: COUNTY's
    return f"第{i + 1}批"


def _waiting(i: int, at: dt.datetime) -> bool:
    """Still waiting: 30 % of the last three weeks' documents, 0.2 % of older ones (stragglers)."""
    roll = (i * 2654435761 >> 13) % 1000  # independent of the receiver (chosen by i % 10)
    return roll < 300 if NOW - at <= RECENT else roll < 2


def _outcome(i: int, at: dt.datetime) -> tuple[dict, dict]:
    """(the sender's recipient row, the receiver's inbox row) of row ``i``: signed, returned or waiting."""
    signed_at = at + dt.timedelta(hours=1 + (i * 37) % 96)
    if _waiting(i, at):
        return dict(status="delivered"), dict(status="pending")
    if i % 20 != 3:
        return dict(status="signed_for", who="李四", when=signed_at), dict(status="signed_for", signed_by="李四",
                                                                          signed_at=signed_at)
    return (dict(status="returned", who="李四", when=signed_at, reason="不属本单位职责"),
            dict(status="returned", return_reason="不属本单位职责"))


def _document(i: int, n: int, issuer: str) -> tuple[str, RegisterFacts, str, str, dt.datetime | None]:
    at = _when(i, n)
    facts = RegisterFacts(doc_number=f"临政办发〔2026〕{i + 1}号", urgency="加急" if i % 7 == 0 else None,
                          classification="非密", written_on=at.date(), issuers=(issuer,))
    title = f"关于做好第{i + 1}批重点工作落实情况报送的通知"
    kind = ("通知", "通报", "函", "意见")[i % 4]
    return title, facts, kind, f"{issuer[-6:]}-2026-{i:06d}", at + DEADLINE_AFTER if i % 2 else None


async def _sent(store, tx, digest: str, i: int, n: int) -> None:
    title, facts, kind, doc_id, deadline = _document(i, n, CITY)
    at = _when(i, n)
    recipients = [OutboxRecipient(unit=unit, role="主送" if k < 3 else "抄送", destination_node="county",
                                  **_outcome(i + k * 3, at)[0]) for k, unit in enumerate(COUNTIES)]
    await store.messages.add_outbox(
        OutboxDocument(doc_id=doc_id, from_unit=CITY, title=title, kind=kind, package_digest=digest,
                       created_at=at, doc_number=facts.doc_number, deadline=deadline, facts=facts),
        recipients, actor="bench", tx=tx)


async def _received(store, tx, digest: str, i: int, n: int, verification: dict | None = None) -> None:
    sender = CITY if i % 2 == 0 else OTHER_COUNTIES[i % len(OTHER_COUNTIES)]  # half from the city
    title, facts, kind, doc_id, deadline = _document(i, n, sender)
    at = _when(i, n)
    await store.messages.add_inbox(InboxRow(
        doc_id=doc_id, unit=receiver(i), role="主送", from_unit=sender, title=title, kind=kind, package_digest=digest,
        received_at=at, urgency=facts.urgency, deadline=deadline, facts=facts, verification=verification,
        **_outcome(i, at)[1]), tx=tx)


# --- children: one export each, measured on its own ----------------------------------------------
async def _child(data_dir: Path, task: str, out: Path) -> dict:
    from node.documents import statistics
    from node.documents.ledger import open_export
    from node.documents.ledger_files import csv_chunks
    from node.documents.ledger_xlsx_stream import xlsx_chunks

    store = await open_store(data_dir, clock=lambda: NOW, recover=False)
    try:
        started = time.perf_counter()
        rows = 0
        first_byte = None
        if task == "baseline":
            pass
        elif task == "stats":
            who = Principal("bench", "李四", "clerk", COUNTY)
            result = await statistics.compute(store, who, "received", "month", [COUNTY], _names, NOW)
            rows = sum(r["rows"] for r in result["rows"])
        elif task == "stats-sent-split":
            who = Principal("bench", "张三", "clerk", CITY)
            result = await statistics.compute(store, who, "sent", "month", [CITY], _names, NOW, by="counterpart")
            rows = sum(r["rows"] for r in result["rows"])
        else:
            side, fmt = task.split("-")
            who = Principal("bench", "李四", "clerk", CITY if side == "sent" else COUNTY)
            export = await open_export(store, who, side, _names, NOW)
            with open(out, "wb") as f:  # as the local API sends it: chunk by chunk, as built
                async for chunk in (xlsx_chunks if fmt == "xlsx" else csv_chunks)(export):
                    if chunk and first_byte is None:
                        first_byte = time.perf_counter() - started
                    f.write(chunk)
            rows = export.rows
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = out.stat().st_size if out.exists() else 0
    return {"task": task, "rows": rows, "seconds": round(seconds, 3), "peak_rss_mb": round(peak_kib / 1024, 1),
            "bytes": size, "first_byte_s": round(first_byte, 3) if first_byte is not None else None}


def run_child(data_dir: Path, task: str, out: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", task, "--data", str(data_dir), "--out", str(out)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"child {task} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


async def plans(data_dir: Path) -> dict[str, list[str]]:
    store = await open_store(data_dir, clock=lambda: NOW, recover=False)
    try:
        since = NOW - dt.timedelta(days=30)
        return {"sent": await store.ledger.plan(LedgerQuery("sent", CITY, start=since, end=NOW, kind="通知")),
                "received": await store.ledger.plan(LedgerQuery("received", COUNTY, start=since, end=NOW,
                                                                status="pending"))}
    finally:
        await store.close()


LEDGER_INDEXES = {"sent": "outbox_ledger", "received": "inbox_ledger"}


def plan_seeks(side: str, plan: list[str]) -> bool:
    """The plan reads the side's ledger index and scans and sorts nothing ("SCAN … USING INDEX" is
    a scan: it reads the whole index)."""
    return (any(f"USING INDEX {LEDGER_INDEXES[side]}" in step for step in plan)
            and not any("SCAN" in step or "TEMP B-TREE" in step for step in plan))


def ledger_figures(tmp: Path, n: int) -> dict:
    """The exports and statistics, each in a child of its own, over a store of ``n`` documents."""
    data_dir = tmp / "data"
    started = time.perf_counter()
    asyncio.run(fill(data_dir, n))
    fill_s = time.perf_counter() - started
    results = {task: run_child(data_dir, task, tmp / f"{task}.out")
               for task in ("baseline", "received-xlsx", "received-csv", "sent-xlsx", "sent-csv", "stats",
                            "stats-sent-split")}
    query_plans = asyncio.run(plans(data_dir))
    documents = -(-n // len(COUNTIES))
    print(f"store filled in {fill_s:.1f} s: the city's sent ledger {documents * len(COUNTIES):,} rows ({documents:,}"
          f" documents × {len(COUNTIES)} counties), {n:,} received over the twelve counties, the big one's"
          f" received ledger {results['received-csv']['rows']:,} rows")
    print(f"{'task':<18}{'rows':>10}{'seconds':>10}{'first byte s':>14}{'peak RSS MiB':>14}{'file MiB':>10}")
    for task, r in results.items():
        first = f"{r['first_byte_s']:.2f}" if r["first_byte_s"] is not None else "–"
        print(f"{task:<18}{r['rows']:>10,}{r['seconds']:>10.2f}{first:>14}{r['peak_rss_mb']:>14.1f}"
              f"{r['bytes'] / 1048576:>10.1f}")
    for side, plan in query_plans.items():
        print(f"plan ({side}): " + " | ".join(plan))
    exports = [results[t] for t in ("received-xlsx", "received-csv", "sent-xlsx", "sent-csv")]
    return {
        "ledger_rows": results["received-xlsx"]["rows"],
        "ledger_peak_rss_mb": max(r["peak_rss_mb"] for r in exports),
        "ledger_baseline_rss_mb": results["baseline"]["peak_rss_mb"],
        "ledger_xlsx_s": results["received-xlsx"]["seconds"], "ledger_csv_s": results["received-csv"]["seconds"],
        "ledger_xlsx_first_byte_s": results["received-xlsx"]["first_byte_s"],
        "ledger_sent_xlsx_s": results["sent-xlsx"]["seconds"], "ledger_sent_csv_s": results["sent-csv"]["seconds"],
        "ledger_sent_rows": results["sent-csv"]["rows"],
        "ledger_stats_s": results["stats"]["seconds"], "ledger_stats_split_s": results["stats-sent-split"]["seconds"],
        "fill_s": round(fill_s, 1),
        "ledger_plans_use_index": all(plan_seeks(side, plan) for side, plan in query_plans.items()),
    }


def page_figures(tmp: Path, n: int, rounds: int) -> dict:
    """The console's pages served by a real node whose store holds ``n`` received documents."""
    from bench.console_pages import WIDE, time_pages

    def fill_node(data_dir: Path, verification: dict) -> None:
        started = time.perf_counter()
        asyncio.run(fill(data_dir, n, verification))
        print(f"the node's store filled in {time.perf_counter() - started:.1f} s", flush=True)

    figures, rows, listed = time_pages(tmp / "pages", fill_node, city=CITY, county=COUNTY, names=NAMES,
                                       documents=n, rounds=rounds, hit=searched_title(n))
    if listed != min(WIDE, DOCUMENT_PAGE_RECIPIENTS):
        raise SystemExit(f"the document page listed {listed} recipients and not the count of {WIDE}, "
                         f"where its first {DOCUMENT_PAGE_RECIPIENTS} and the count were expected")
    print(f"pages, {rounds} rounds each after a warm-up (server time from Server-Timing; wall time at the client)")
    print(f"{'page':<36}{'server p50 ms':>14}{'server p99 ms':>14}{'wall p50 ms':>12}")
    for name, p50, p99, wall in rows:
        print(f"{name:<36}{p50:>14.1f}{p99:>14.1f}{wall:>12.1f}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 documents instead of 100,000")
    parser.add_argument("--documents", type=int, help="how many documents (overrides --quick)")
    parser.add_argument("--part", choices=("ledger", "pages"), help="only the ledger's or only the pages' figures")
    parser.add_argument("--rounds", type=int, help="times each page is asked for (50; quick 10)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.data, args.child, args.out))))
        return 0
    n = args.documents or (5_000 if args.quick else 100_000)
    figures: dict = {"documents": n}
    with tempfile.TemporaryDirectory(dir=os.environ.get("GWX_BENCH_DIR")) as tmp:
        if args.part != "pages":
            figures.update(ledger_figures(Path(tmp), n))
        if args.part != "ledger":
            figures.update(page_figures(Path(tmp), n, args.rounds or (10 if args.quick else 50)))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
