"""bench/adapters.py, smaller: every measurement runs against a real node and its figures are there."""

from __future__ import annotations

import argparse

import pytest

from bench.adapters import MEASUREMENTS, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_every_measurement_gives_its_figures(tmp_path):
    args = argparse.Namespace(quick=True, inflight=2, documents=3, mtom_mib=8, oa_push_mib=8)
    fig, rows = run(tmp_path, args, list(MEASUREMENTS))
    for key in ("soap_submit_per_s", "soap_fetch_per_s", "api_submit_per_s", "mtom_8mib_peak_rss_mb"):
        assert fig[key] > 0, key
    assert fig["mtom_8mib_peak_rss_mb"] >= fig["mtom_start_rss_mb"]
    # every document's event reached the verifying receiver (else measure_webhooks raises), and the
    # figures are what they say: arrival at the node → receiver, never negative, p99 ≥ p50
    assert fig["webhook_documents"] == 3
    assert 0 < fig["webhook_after_inbox_p50_s"] <= fig["webhook_p50_s"] <= fig["webhook_p99_s"] < 60
    # every document reached the test OA once (else measure_oa_push times out), the same way
    assert fig["oa_push_documents"] == 3 and fig["oa_push_calls"] == 3
    assert 0 < fig["oa_push_after_inbox_p50_s"] <= fig["oa_push_p50_s"] <= fig["oa_push_p99_s"] < 60
    # the attachment pushed to the OA arrived whole (else oa_push_memory raises), with the node's peak
    assert fig["oa_push_8mib_peak_rss_mb"] >= fig["oa_push_memory_start_rss_mb"] > 0
    assert len(rows) == 11 and all(value for _, value, _ in rows)
