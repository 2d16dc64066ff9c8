"""node.ops.metrics: series exist from zero (an alert sees 0, not "no data") and values are printed in full."""

from __future__ import annotations

import pytest

from node.ops.metrics import Registry


def test_counters_and_histograms_exist_from_zero_and_labelled_ones_as_declared():
    registry = Registry()
    plain = registry.counter("gwx_plain_total", "no labels")
    by_code = registry.counter("gwx_by_code_total", "by code", labels=("code",))
    undeclared = registry.counter("gwx_undeclared_total", "by peer", labels=("peer",))
    registry.histogram("gwx_seconds", "a latency")
    by_code.declare(code="A")
    text = registry.render()
    assert "\ngwx_plain_total 0\n" in text and 'gwx_by_code_total{code="A"} 0' in text
    assert 'gwx_seconds_bucket{le="+Inf"} 0' in text and "gwx_seconds_count 0" in text
    # A labelled counter never shows a label-less series (it would vanish at the first increment).
    assert not [line for line in text.splitlines() if line.startswith("gwx_undeclared_total")]
    plain.inc()
    undeclared.inc(peer="b")
    text = registry.render()
    assert "\ngwx_plain_total 1\n" in text and 'gwx_undeclared_total{peer="b"} 1' in text
    with pytest.raises(ValueError):
        by_code.declare(peer="x")


def test_values_are_printed_in_full():
    registry = Registry()
    gauge = registry.gauge("gwx_when", "a time")
    gauge.set(1796086786.25)
    gauge.set(1796086786, kind="whole")
    text = registry.render()
    assert "gwx_when 1796086786.25" in text and 'gwx_when{kind="whole"} 1796086786\n' in text
