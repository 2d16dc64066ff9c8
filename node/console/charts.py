"""Charts drawn by the node as inline SVG: no chart library is downloaded and no script runs.

The console's CSP (:mod:`node.console.security`) allows no inline script and no inline style, so a
chart is markup the server writes: shapes with presentation attributes (``fill``, ``stroke`` — not
``style``), a ``<title>`` on every bar and point (the browser shows it on hover and a screen reader
reads it), and a ``viewBox`` so it scales to a phone's width (``svg.chart`` in console.css).

* :func:`bars` — one or two series of counts per period, side by side (documents, 签收).
* :func:`lines` — one or two series per period on a shared axis (hours to 签收, rates in %); a
  period without a value (nothing signed) leaves a gap in its line.

Each takes the periods' labels and the series as ``(name, colour, values)``; values are numbers
or ``None``. Text is escaped: unit names and labels come from the network's directory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 40
Series = tuple[str, str, Sequence[float | None]]


def _nice_top(top: float) -> float:
    """A round axis maximum at or above ``top`` (1, 2, 2.5 or 5 times a power of ten)."""
    if top <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 2.5, 5, 10):
        if top <= step * power:
            return step * power
    return 10 * power  # pragma: no cover — the loop ends at 10 × power ≥ top


def _number(value: float) -> str:
    """At most two decimals, none trailing: an axis at a quarter of 1 reads 0.25, not 0.2."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _frame(title: str, labels: Sequence[str], top: float, unit: str, series: Sequence[Series]) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"'
           f' xmlns="http://www.w3.org/2000/svg">',
           f'<text x="{LEFT}" y="16" font-size="14" fill="#222">{escape(title)}</text>']
    for i in range(5):  # horizontal grid lines with their values
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3ea"/>')
        out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#666">'
                   f'{_number(value)}{escape(unit)}</text>')
    every = max(1, math.ceil(len(labels) / 8))  # at most about eight period labels under the axis
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + plot_w * (i + 0.5) / len(labels)
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" text-anchor="middle"'
                       f' fill="#666">{escape(label)}</text>')
    x = LEFT + plot_w
    for name, colour, _ in reversed(series):  # the legend, right-aligned on the title's line
        out.append(f'<rect x="{x - 10}" y="6" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x - 14}" y="15" font-size="12" text-anchor="end" fill="#222">{escape(name)}</text>')
        x -= 24 + 13 * len(name)
    return out


def bars(title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "") -> Markup:
    """Counts per period as bars, the series side by side within each period's slot."""
    values = [v for _, _, vs in series for v in vs if v is not None]
    top = _nice_top(max(values, default=0))
    out = _frame(title, labels, top, unit, series)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(labels), 1)
    bar = slot * 0.8 / max(len(series), 1)
    for s, (name, colour, vs) in enumerate(series):
        for i, value in enumerate(vs):
            if not value:
                continue
            h = plot_h * value / top
            x = LEFT + slot * i + slot * 0.1 + bar * s
            out.append(f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{max(bar, 1):.1f}"'
                       f' height="{h:.1f}" fill="{colour}"><title>{escape(labels[i])} {escape(name)}：'
                       f'{_number(value)}{escape(unit)}</title></rect>')
    out.append("</svg>")
    return Markup("".join(out))


def lines(title: str, labels: Sequence[str], series: Sequence[Series], unit: str = "",
          top: float | None = None) -> Markup:
    """Values per period as lines with a dot per value; ``top`` fixes the axis (100 for a rate in %)."""
    values = [v for _, _, vs in series for v in vs if v is not None]
    top = top or _nice_top(max(values, default=0))
    out = _frame(title, labels, top, unit, series)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    for name, colour, vs in series:
        runs: list[list[str]] = [[]]
        for i, value in enumerate(vs):
            if value is None:
                runs.append([])
                continue
            x = LEFT + plot_w * (i + 0.5) / len(labels)
            y = TOP + plot_h - plot_h * min(value, top) / top
            runs[-1].append(f"{x:.1f},{y:.1f}")
            out.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>'
                       f'{escape(labels[i])} {escape(name)}：{_number(value)}{escape(unit)}</title></circle>')
        for run in runs:
            if len(run) > 1:
                out.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2"/>')
    out.append("</svg>")
    return Markup("".join(out))
