"""SVG charts: well-formed, accessible, escaped, and sane for empty and one-point series."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from metropoints.core.charts import line_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    """The chart as XML (fails on anything not well-formed)."""
    return ET.fromstring(str(markup))


def days(values: list[int], start: date = date(2026, 3, 1)) -> list[tuple[date, int]]:
    """Consecutive days with the given values."""
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def test_series_chart_is_scalable_and_labelled():
    """A series draws a line and an area, scales with its container (viewBox, width 100%), and names itself for
    screen readers (<title>, aria-label, <desc> with the first and last values); axes show dates and values."""
    markup = line_chart(days([0, 5, 1_200, 2_500]), title="Riders", chart_id="c1")
    svg = parse(markup)
    assert svg.get("viewBox") == "0 0 320 150" and svg.get("width") == "100%" and svg.get("height") is None
    assert svg.get("role") == "img" and svg.get("aria-label") == "Riders"
    assert svg.get("aria-labelledby") == "c1-title c1-desc"
    assert svg.find(f"{SVG}title").text == "Riders"
    assert svg.find(f"{SVG}desc").text == "2026-03-01: 0; 2026-03-04: 2,500"
    assert len(svg.find(f"{SVG}polyline").get("points").split()) == 4
    assert svg.find(f"{SVG}path").get("d").endswith("Z")
    ticks = [t.text for t in svg.iter(f"{SVG}text")]
    assert ticks == ["0", "2,500", "5,000", "03-01", "03-02", "03-04"]


def test_year_long_series_labels_months():
    """Over more than half a year the date labels name year and month."""
    ticks = [t.text for t in parse(line_chart(days(list(range(365)), date(2025, 1, 1)), title="t",
                                              chart_id="c")).iter(f"{SVG}text")]
    assert ticks[-3:] == ["2025-01", "2025-07", "2025-12"]


def test_text_is_escaped():
    """Titles, ids, value labels and the empty text are escaped: nothing in them becomes markup."""
    evil = '<script>alert("x")</script> & co'
    markup = line_chart(days([1, 2]), title=evil, chart_id='a"b', value_format=lambda v: f"<{v:.0f}>")
    assert "<script>" not in markup and "&lt;script&gt;" in markup and "&amp; co" in markup
    svg = parse(markup)
    assert svg.find(f"{SVG}title").text == evil and svg.get("aria-label") == evil
    assert "<0>" in [t.text for t in svg.iter(f"{SVG}text")]
    empty = line_chart([], title="t", chart_id="e", empty_text="<none>")
    assert "<none>" not in empty and parse(empty).find(f"{SVG}desc").text == "<none>"


def test_empty_series_says_so():
    """No points: an axis and the empty text, no line, still titled and well-formed."""
    svg = parse(line_chart([], title="Points", chart_id="p", empty_text="No data yet"))
    assert svg.find(f"{SVG}title").text == "Points"
    assert [t.text for t in svg.iter(f"{SVG}text")] == ["No data yet"]
    assert svg.find(f"{SVG}polyline") is None and svg.find(f"{SVG}path") is None


def test_one_point_is_a_dot_in_the_middle():
    """A single day draws one dot (centred) with its date and value, and no line or area."""
    svg = parse(line_chart([(date(2026, 5, 4), 7)], title="t", chart_id="o"))
    assert svg.find(f"{SVG}polyline") is None and svg.find(f"{SVG}path") is None
    dot = svg.find(f"{SVG}circle")
    assert float(dot.get("cx")) == pytest.approx(46 + (320 - 46 - 10) / 2)
    assert dot.find(f"{SVG}title").text == "2026-05-04: 7"
    assert [t.text for t in svg.iter(f"{SVG}text")][-1] == "05-04"


def test_flat_zero_series_stays_on_the_axis():
    """All zeros: the line lies on the bottom axis and the axis still runs 0..2 (no division by zero)."""
    svg = parse(line_chart(days([0, 0, 0]), title="t", chart_id="z"))
    ys = {point.split(",")[1] for point in svg.find(f"{SVG}polyline").get("points").split()}
    assert ys == {str(150 - 24)}


@pytest.mark.parametrize(("value", "top"), [(0, 2), (0.7, 1), (3, 4), (7, 8), (10, 10), (11, 20), (60, 100),
                                            (1_234, 2_000), (4_800, 5_000)])
def test_nice_ceiling(value, top):
    """The value axis tops out at a round number at least as big as the largest value, with a round half."""
    assert nice_ceiling(value) == top
