"""bench/check_split.py --quick: the checks a pool could take are priced, the hand-offs too, and the
Amdahl bound follows from them and the receiver's CPU a document given."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.timeout(300)


def test_the_checks_the_hand_offs_and_the_bound_come_out():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "check_split.py"), "--quick", "--packages", "12",
                             "--accept-ms", "4", "--inbox-ms", "8"],
                            capture_output=True, text=True, timeout=280, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]  # it exits non-zero when a package fails a check
    lines = result.stdout.strip().splitlines()
    fig = json.loads(lines[-1])
    assert lines[0].startswith("figure") and any(line.startswith("bound on inbox/s") for line in lines[:-1])
    assert fig["packages"] == 12 and 12_000 < fig["package_bytes"] < 24_000  # the small document
    assert fig["check_before_receipt_ms"] > 0 and fig["judge_pdf_later_ms"] > 0 and fig["full_lean_check_ms"] > 0
    assert fig["handoff_futures_us"] > 0 and fig["handoff_futures_batched_us"] > 0 and fig["handoff_pipe_us"] > 0
    # The bound is 1 / (1 - share moved), the share net of the hand-offs it adds.
    moved = fig["check_before_receipt_ms"] + fig["judge_pdf_later_ms"] - 2 * fig["handoff_pipe_us"] / 1000
    assert fig["bound_inbox_pipe"] == pytest.approx(1 / (1 - moved / 8), abs=0.011)
    moved = fig["check_before_receipt_ms"] - fig["handoff_futures_us"] / 1000
    assert fig["bound_accepted_futures"] == pytest.approx(1 / (1 - moved / 4), abs=0.011)
