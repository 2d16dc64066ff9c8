"""bench/node.py --small --vs-postfix: the small-document figures come out beside Postfix's, in plain
SMTP and with STARTTLS and client certificates (bench/postfix_smtp.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def test_small_documents_are_accepted_delivered_and_compared_with_postfix():
    # 64 documents in four batches of 16, all four POSTs in flight at once (as 128 in batches of 32 were):
    # the count is not the point here, every one accepted, verified and delivered is. --quick only
    # shortens the primitive floor's timing loops (0.3 s each rather than 1 s).
    result = subprocess.run([sys.executable, str(REPO / "bench" / "node.py"), "--small", "--vs-postfix", "--quick",
                             "--documents", "64", "--batch", "16", "--postfix-connections", "4"],
                            capture_output=True, text=True, timeout=400, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    fig = json.loads(lines[-1])
    # A readable table before the JSON line: acceptance, the inbox and Postfix, one row each.
    table = lines[lines.index(next(line for line in lines if line.startswith("figure"))):-1]
    labels = [line[:44].strip() for line in table[1:]]
    assert {"accepted durably", "in the inbox, full check", "accepted × Postfix (plain / TLS)"} <= set(labels), table
    # Every envelope accepted, every receipt verified, every document in the inbox (none failed).
    assert fig["accepted"] == fig["receipts_verified"] == 64 and fig["refused"] == 0
    assert fig["inbox_failed"] == 0 and fig["inbox_per_s"] > 0
    assert 12_000 < fig["envelope_bytes"] < 24_000  # a small document, not the 157 KiB one
    assert fig["accepted_per_s"] > 0 and fig["cpu_ms_per_doc"] > fig["floor_ms_per_doc"] > 0
    assert fig["postfix_per_s"] > 0 and fig["postfix_cpu_ms_per_msg"] > 0
    assert fig["ratio_vs_postfix"] == pytest.approx(fig["accepted_per_s"] / fig["postfix_per_s"], rel=1e-2)
    # Like for like: STARTTLS with a client certificate smtpd requires (it refuses the mail without TLS).
    assert fig["postfix_tls_per_s"] > 0 and fig["postfix_tls_cpu_ms_per_msg"] > 0
    assert fig["postfix_tls_refusals"]["plain"].startswith("530"), fig["postfix_tls_refusals"]
    assert not fig["postfix_tls_refusals"]["no_client_certificate"].startswith("250"), fig["postfix_tls_refusals"]
    assert fig["ratio_vs_postfix_tls"] == pytest.approx(fig["accepted_per_s"] / fig["postfix_tls_per_s"], rel=1e-2)
