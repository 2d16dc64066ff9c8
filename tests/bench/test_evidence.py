"""bench/evidence.py --quick: the per-签收 figures come out, and statements cost no extra envelopes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.timeout(120)


def test_the_statement_figures_come_out_and_a_full_batch_still_fits_one_envelope():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "evidence.py"), "--quick", "--seals", "12"], capture_output=True,
                            text=True, timeout=110, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    fig = json.loads(result.stdout.strip().splitlines()[-1])
    # Timings come out; which is larger is the machine's business (a loaded CI once timed the bare
    # signature slower than the statement around it), so no test compares them.
    assert min(fig["sign_us"], fig["ecdsa_sign_us"], fig["verify_us"], fig["ecdsa_verify_us"]) > 0
    assert 1000 < fig["statement_bytes"] < 4000 and fig["entry_bytes_added"] > fig["statement_bytes"]
    assert fig["notices_per_batch_signed"] == fig["notices_per_batch_plain"] == 256
    assert fig["envelopes_for_3600_signed"] == fig["envelopes_for_3600_plain"] == 15
    # Distinct seals, each verified once (as at the issuing node), and what 3,600 of them cost it.
    assert fig["seals"] == 12 and fig["verify_distinct_us"] > 0
    assert fig["issuing_node_3600_s"] == round(fig["verify_distinct_us"] * 3600 / 1e6, 2)


def test_with_county_cas_the_seals_chain_through_them_and_each_crl_is_checked():
    """--counties: the city's shape (seals from county CAs, a CRL per CA); every statement verifies
    (the bench fails otherwise) and its CPU time is reported beside the wall time."""
    result = subprocess.run([sys.executable, str(REPO / "bench" / "evidence.py"), "--quick", "--seals", "6",
                             "--counties", "3"], capture_output=True, text=True, timeout=110, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    fig = json.loads(result.stdout.strip().splitlines()[-1])
    assert fig["counties"] == 3 and fig["seals"] == 6
    assert fig["verify_distinct_us"] > 0 and fig["verify_distinct_cpu_us"] > 0
