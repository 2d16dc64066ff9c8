"""A small Prometheus registry: counters, gauges and histograms in the text exposition format.

Enough for ``/metrics`` (queue depths, deliveries, failures, latencies) without a dependency.
Labels are passed as keyword arguments; each distinct label set is its own series.

Counters and histograms exist from zero: one without labels is rendered (0) before anything
happened, and a labelled one renders every label set :meth:`Counter.declare` named — an alert on
``rate(gwx_envelopes_bounced_total[5m])`` must see a series that is 0, not none, or it cannot tell
"nothing bounced" from "no such node" (Prometheus' own advice: initialise the series you know).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Awaitable, Callable

LabelKey = tuple[tuple[str, str], ...]
log = logging.getLogger("gwx.metrics")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _key(labels: dict[str, object]) -> LabelKey:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _fmt_labels(key: LabelKey, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = key + extra
    if not items:
        return ""
    body = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                    for k, v in items)
    return "{" + body + "}"


def _value(v: float) -> str:
    """A sample value in full: ``:g`` kept six digits, so a timestamp (1796086786) came out as 1.79609e+09,
    off by up to an hour, and a certificate's seconds to expiry by as much."""
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        super().__init__(name, help_text)
        self.labels = labels  # the label names every series has; none: one unlabelled series, 0 at start
        self._values: dict[LabelKey, float] = {}

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        k = _key(labels)
        with self._lock:
            self._values[k] = self._values.get(k, 0.0) + amount

    def declare(self, **labels: object) -> Counter:
        """Make the series of ``labels`` exist (at 0) before its first increment; returns self."""
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} has the labels {self.labels}, not {tuple(labels)}")
        k = _key(labels)
        with self._lock:
            self._values.setdefault(k, 0.0)
        return self

    def value(self, **labels: object) -> float:
        return self._values.get(_key(labels), 0.0)

    def render(self) -> list[str]:
        values = self._values if self._values or self.labels else {(): 0.0}  # unlabelled: 0 before the first
        return self.header() + [f"{self.name}{_fmt_labels(k)} {_value(v)}" for k, v in sorted(values.items())]


class Gauge(_Metric):
    """A gauge whose series are read from a callback at scrape time (queue depths live in SQLite)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._values: dict[LabelKey, float] = {}

    def set(self, value: float, **labels: object) -> None:
        with self._lock:
            self._values[_key(labels)] = value

    def replace(self, series: dict[LabelKey, float]) -> None:
        with self._lock:
            self._values = dict(series)

    def render(self) -> list[str]:
        return self.header() + [f"{self.name}{_fmt_labels(k)} {_value(v)}" for k, v in sorted(self._values.items())]


class SampledCounter(Gauge):
    """A counter kept elsewhere (the kernel's CPU seconds) and read at scrape time, like a gauge."""

    kind = "counter"


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS,
                 labels: tuple[str, ...] = ()) -> None:
        super().__init__(name, help_text)
        self.buckets = buckets
        self.labels = labels
        self._series: dict[LabelKey, list[float]] = {}  # bucket counts…, +Inf count, sum

    def observe(self, value: float, **labels: object) -> None:
        k = _key(labels)
        with self._lock:
            s = self._series.setdefault(k, [0.0] * (len(self.buckets) + 2))
            s[bisect.bisect_left(self.buckets, value)] += 1
            s[-1] += value

    def render(self) -> list[str]:
        lines = self.header()
        # Nothing observed yet: the unlabelled series, all zero (it exists from the start, like a counter).
        series = self._series if self._series or self.labels else {(): [0.0] * (len(self.buckets) + 2)}
        for k, s in sorted(series.items()):
            cumulative = 0.0
            for bound, count in zip(self.buckets, s, strict=False):
                cumulative += count
                lines.append(f"{self.name}_bucket{_fmt_labels(k, (('le', f'{bound:g}'),))} {_value(cumulative)}")
            cumulative += s[len(self.buckets)]
            lines.append(f"{self.name}_bucket{_fmt_labels(k, (('le', '+Inf'),))} {_value(cumulative)}")
            lines.append(f"{self.name}_count{_fmt_labels(k)} {_value(cumulative)}")
            lines.append(f"{self.name}_sum{_fmt_labels(k)} {_value(s[-1])}")
        return lines


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []
        self._collectors: list[Callable[[], Awaitable[None]]] = []

    def counter(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> Counter:
        return self._add(Counter(name, help_text, labels))

    def gauge(self, name: str, help_text: str) -> Gauge:
        return self._add(Gauge(name, help_text))

    def sampled_counter(self, name: str, help_text: str) -> SampledCounter:
        return self._add(SampledCounter(name, help_text))

    def histogram(self, name: str, help_text: str, buckets: tuple[float, ...] = DEFAULT_BUCKETS,
                  labels: tuple[str, ...] = ()) -> Histogram:
        return self._add(Histogram(name, help_text, buckets, labels))

    def _add(self, metric):
        self._metrics.append(metric)
        return metric

    def on_collect(self, collect: Callable[[], Awaitable[None]]) -> None:
        """``collect()`` is awaited by :meth:`collect`, before /metrics renders: gauges read from the
        store when someone looks, not on a timer (163 nodes on one machine each reading their store
        every 5 s for a page nobody fetched cost more round trips than a fifth of their clerks' 签收)."""
        self._collectors.append(collect)

    async def collect(self) -> None:
        """Bring every collected gauge up to date; one that fails keeps its last values (logged)."""
        for collect in list(self._collectors):
            try:
                await collect()
            except Exception:
                log.exception("cannot refresh gauges")

    def render(self) -> str:
        return "\n".join(line for m in self._metrics for line in m.render()) + "\n"
