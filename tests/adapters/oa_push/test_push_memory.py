"""A 64 MiB attachment pushed to an OA by a real node process: the OA receives every byte (its
digest), and the node's peak RSS grows by well under the attachment (measured: 14 MiB; 394 MiB
when zeep was given the content inline), since the body and attachments are streamed from the
sealed package into the message."""

from __future__ import annotations

import pytest

from tests.adapters.oa_push.push_memory import MiB, push_large_attachment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_a_64_mib_attachment_reaches_the_oa_in_bounded_memory(tmp_path):
    size = 64 * MiB
    run = push_large_attachment(tmp_path, size)
    got = run["received"]
    assert got["fj"] == [("现场检查录像.mp4", run["sha256"], size)]  # every byte, as sent
    assert got["gwbs"] == run["doc_id"] and got["zw"][1] > 0 and got["lyxt"] == "GWX"
    growth = run["peak_rss_mb"] - run["start_rss_mb"]
    print(f"peak RSS {run['peak_rss_mb']:.0f} MiB, {run['start_rss_mb']:.0f} at start, {run['push_s']:.1f} s")
    assert growth < 24, f"peak RSS {run['peak_rss_mb']:.0f} MiB, {run['start_rss_mb']:.0f} MiB at start"
