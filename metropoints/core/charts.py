"""Server-rendered SVG charts for any package's page (the KPIs, the dashboards' panels): pure functions from a daily
series to inline markup (no script, no network).

The SVG has a viewBox and no fixed size, so CSS scales it to its container; the axis labels are in the SVG's
own units, chosen so they stay readable from a phone (about 1.1 scale) to a desktop card (about 0.9).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT = 320, 150
# Room for the value labels on the left and the dates below.
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 10, 24


def thousands(value: float) -> str:
    """A value with thousands separators and no decimals (the default axis label)."""
    return f"{value:,.0f}"


def nice_ceiling(value: float) -> float:
    """A round top for the value axis, at least `value`, whose half is round too.

    Up to 10 it is the next even number (so a count of 3 gets 0, 2, 4 rather than a mid label of 2.5); above,
    the smallest of 1, 2, 5 × 10^k; below 1, the same for fractions.
    """
    if value <= 0:
        return 2  # an empty series: 0, 1, 2 rather than a middle label of 0.5 shown as "0"
    if 1 <= value <= 10:
        return float(math.ceil(value / 2) * 2)
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5):
        if step * power >= value:
            return step * power
    return 10 * power


def _date_label(day: date, span_days: int) -> str:
    """A short date for the axis: month-day within half a year, year-month beyond."""
    return day.strftime("%Y-%m") if span_days > 183 else day.strftime("%m-%d")


def _fmt(number: float) -> str:
    """An SVG coordinate with at most one decimal."""
    return f"{number:.1f}".rstrip("0").rstrip(".")


def line_chart(points: Sequence[tuple[date, float]], *, title: str, chart_id: str, empty_text: str = "No data",
               value_format: Callable[[float], str] = thousands) -> Markup:
    """An area-under-a-line chart of (day, value) pairs, oldest first, as accessible inline SVG.

    `title` names the chart for screen readers (<title>, aria-label); a <desc> gives the first and last
    values. All text is escaped: titles and labels may come from translations or data.
    """
    chart_id = str(escape(chart_id))
    title_text = escape(title)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-label="{title_text}" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{title_text}</title>',
    ]
    if not points:
        parts.append(f'<desc id="{chart_id}-desc">{escape(empty_text)}</desc>')
        parts.append(f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>')
        parts.append(f'<text class="empty" x="{LEFT + plot_w / 2:.0f}" y="{TOP + plot_h / 2:.0f}" '
                     f'text-anchor="middle">{escape(empty_text)}</text></svg>')
        return Markup("".join(parts))

    values = [float(v) for _, v in points]
    low = min(0.0, min(values))
    high = nice_ceiling(max(values) - low) + low if max(values) > low else low + 1
    first_day, last_day = points[0][0], points[-1][0]
    span = (last_day - first_day).days

    def x_at(index: int) -> float:
        """Horizontal position of the index-th point (a lone point sits in the middle)."""
        return LEFT + (plot_w / 2 if len(points) == 1 else plot_w * index / (len(points) - 1))

    def y_at(value: float) -> float:
        """Vertical position of a value."""
        return bottom - plot_h * (value - low) / (high - low)

    description = (f"{first_day.isoformat()}: {value_format(values[0])}; "
                   f"{last_day.isoformat()}: {value_format(values[-1])}")
    parts.append(f'<desc id="{chart_id}-desc">{escape(description)}</desc>')
    # Grid and value labels at the bottom, middle and top.
    for share in (0, 0.5, 1):
        value = low + (high - low) * share
        y = _fmt(y_at(value))
        parts.append(f'<line class="{"axis" if share == 0 else "grid"}" x1="{LEFT}" y1="{y}" '
                     f'x2="{WIDTH - RIGHT}" y2="{y}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y}" dy="4" text-anchor="end">'
                     f'{escape(value_format(value))}</text>')
    # Date labels at the first, middle and last point (only the distinct ones).
    anchors = {0: "start", (len(points) - 1) // 2: "middle", len(points) - 1: "end"}
    for index, anchor in sorted(anchors.items()):
        anchor = "middle" if len(points) == 1 else anchor
        parts.append(f'<text class="tick" x="{_fmt(x_at(index))}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
                     f'{escape(_date_label(points[index][0], span))}</text>')

    line = " ".join(f"{_fmt(x_at(i))},{_fmt(y_at(v))}" for i, v in enumerate(values))
    if len(points) > 1:
        area = (f"M{_fmt(x_at(0))},{bottom} L{line.replace(' ', ' L')} "
                f"L{_fmt(x_at(len(points) - 1))},{bottom} Z")
        parts.append(f'<path class="area" d="{area}"/>')
        parts.append(f'<polyline class="line" points="{line}"/>')
    last_x, last_y = _fmt(x_at(len(points) - 1)), _fmt(y_at(values[-1]))
    parts.append(f'<circle class="dot" cx="{last_x}" cy="{last_y}" r="3.5">'
                 f'<title>{escape(last_day.isoformat())}: {escape(value_format(values[-1]))}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
