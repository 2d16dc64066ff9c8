"""bench/adapters_webhook.py, small: every document's event reaches the verifying receiver, and the
figures are what they say (arrival at the node → receiver, never negative, p99 ≥ p50)."""

from __future__ import annotations

import pytest

from bench.adapters_webhook import measure_webhooks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_webhook_latency_is_measured_for_every_document(tmp_path):
    figures = measure_webhooks(tmp_path, documents=4, interval=0.2)
    assert figures["webhook_documents"] == 4
    assert 0 < figures["webhook_after_inbox_p50_s"] <= figures["webhook_p50_s"] <= figures["webhook_p99_s"] < 60
