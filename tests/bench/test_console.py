"""bench/console.py (the 台账 part), smaller: the export children run and the figures are there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_ledger_figures_come_out_of_a_small_run():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "console.py"), "--documents", "1200"],
                            capture_output=True, text=True, timeout=280, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["documents"] == 1200 and figures["ledger_rows"] == 1200  # every received row exported
    assert figures["ledger_peak_rss_mb"] >= figures["ledger_baseline_rss_mb"] > 0
    assert figures["ledger_xlsx_s"] > 0 and figures["ledger_csv_s"] > 0
    assert figures["ledger_plans_use_index"] is True
    assert "plan (received): SEARCH i USING INDEX inbox_ledger" in result.stdout
