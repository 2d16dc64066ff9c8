"""bench/console.py (the 台账 part), smaller: the export children run and the figures are there."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _bench(documents: int, *options: str) -> tuple[dict, str]:
    result = subprocess.run([sys.executable, str(REPO / "bench" / "console.py"), "--documents", str(documents),
                             *(options or ("--part", "ledger"))], capture_output=True, text=True, timeout=280, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout


def test_the_ledger_figures_come_out_and_memory_does_not_grow_with_rows():
    small, out = _bench(2000)
    # The big county's 60 % of the received rows, every one exported (the rest are its neighbours').
    assert small["documents"] == 2000 and small["ledger_rows"] == 1200
    assert small["ledger_sent_rows"] == 2004  # 167 documents, each to a dozen counties
    assert small["ledger_xlsx_s"] > 0 and small["ledger_csv_s"] > 0
    assert 0 < small["ledger_xlsx_first_byte_s"] < small["ledger_xlsx_s"]  # streamed: bytes before the end
    assert small["ledger_plans_use_index"] is True
    assert "plan (received): SEARCH i USING INDEX inbox_ledger" in out
    large, _ = _bench(10000)
    # Five times the rows (both past the first pages, where SQLite's cache and the first page of
    # 1,000 rows settle): the exports' peak memory above the process's own stays within a few MiB
    # (the XLSX deflated into the answer a page at a time); holding the 8,000 more rows would add
    # in proportion about 11 (about 17 for 3,000 against 15,000, as this test had them).
    growth = ((large["ledger_peak_rss_mb"] - large["ledger_baseline_rss_mb"])
              - (small["ledger_peak_rss_mb"] - small["ledger_baseline_rss_mb"]))
    assert growth < 4, (small, large)


def test_the_plan_check_wants_the_ledger_index_and_no_scan():
    saved = list(sys.path)  # the script puts the repository root first in sys.path when loaded
    spec = importlib.util.spec_from_file_location("bench_console", REPO / "bench" / "console.py")
    console = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(console)
    finally:
        sys.path[:] = saved
    assert console.plan_seeks("received", ["SEARCH i USING INDEX inbox_ledger (unit_code=? AND received_at>?)"])
    assert not console.plan_seeks("received", ["SCAN i USING INDEX inbox_ledger"])  # reads the whole index
    assert not console.plan_seeks("received", ["SEARCH i USING INDEX inbox_unit (unit_code=?)"])  # another index
    assert not console.plan_seeks("sent", ["SEARCH o USING INDEX outbox_ledger (from_unit=?)",
                                           "USE TEMP B-TREE FOR ORDER BY"])


def test_the_pages_are_timed_by_the_node_over_http():
    figures, out = _bench(2000, "--part", "pages", "--rounds", "3")
    assert figures["documents"] == 2000 and figures["page_rounds"] == 3
    for key in ("inbox_page_ms_p50", "inbox_page_ms_p99", "track_page_ms_p50", "track_overdue_page_ms_p50",
                "doc_page_ms_p50", "track_api_ms_p50",
                "counts_page_ms_p50", "search_ms_p50", "search_miss_ms_p50", "outbox_page_ms_p50"):
        assert 0 < figures[key] < 60_000, (key, figures)  # a number the node reported (Server-Timing)
    assert figures["inbox_page_ms_p50"] <= figures["inbox_page_ms_p99"]
    assert "document page (of 3,600 recipients)" in out  # the bench checked the page listed its first 50 and counted all 3,600
    # … and that the track page's 超期 filter listed late recipients (the 通知's 办理时限 passed).
    assert "track page (超期, first 100)" in out

