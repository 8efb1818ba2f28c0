"""Panels: how a page of a lower package shows figures that belong to higher ones, with no import running up.

A package registers a render function for a page by name (`add_panel("owner_dashboard", render, order=20)`), from
its own `panels.py`; `create_app` calls each package's `panels.register()`. The page, wherever it lives, renders
`panels_for("owner_dashboard", merchant=..., window=...)`: each function gets the same keyword arguments and returns
its markup (or None to show nothing). The pages and what they pass:

- `owner_dashboard` (marketplace): `merchant`, `window` (a DayWindow, the page's 30/90-day switch);
- `operator_merchant` (marketplace, the back office): `merchant`, `window`.

Also here, for the panels' charts: the window of service days a panel reads (so its reads are bounded by the
window, never by history) and the SQL for a timestamp's service day.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from markupsafe import Markup
from sqlalchemy import ColumnElement, Date, func

from metropoints.core.db import db
from metropoints.core.timeutil import SERVICE_OFFSET, service_day, utcnow

PanelRender = Callable[..., Markup | str | None]


@dataclass(frozen=True)
class Panel:
    """A block a package adds to a page: its render function, placed by `order` (then by name)."""

    page: str
    name: str
    render: PanelRender
    order: int


_PANELS: dict[str, list[Panel]] = {}


def add_panel(page: str, render: PanelRender, *, order: int = 50, name: str | None = None) -> None:
    """Show `render(**context)` on a page; once per (page, name), the name being the function's dotted path unless
    given, so registering again (another app in the same process) changes nothing."""
    name = name or f"{render.__module__}.{render.__qualname__}"
    panels = _PANELS.setdefault(page, [])
    if all(panel.name != name for panel in panels):
        panels.append(Panel(page, name, render, order))
        panels.sort(key=lambda panel: (panel.order, panel.name))


def panels_for(page: str, **context: Any) -> list[Markup]:
    """The page's panels rendered with the page's context, in order; a panel that returns nothing is left out."""
    shown = []
    for panel in _PANELS.get(page, ()):
        markup = panel.render(**context)
        if markup:
            shown.append(Markup(markup))
    return shown


def registered(page: str) -> list[str]:
    """The names of a page's panels, in order (for tests and the curious)."""
    return [panel.name for panel in _PANELS.get(page, ())]


# -- the window a panel reads -----------------------------------------------------------------------------------

WINDOW_DAYS = (30, 90)
DEFAULT_WINDOW_DAYS = 30


@dataclass(frozen=True)
class DayWindow:
    """The last `size` service days (Asia/Shanghai) up to today, both ends included."""

    first: date
    last: date

    @property
    def size(self) -> int:
        """How many days the window holds."""
        return (self.last - self.first).days + 1

    @property
    def days(self) -> list[date]:
        """Every day of the window, oldest first."""
        return [self.first + timedelta(days=n) for n in range(self.size)]

    @property
    def start(self) -> datetime:
        """The first day's first moment, in UTC."""
        return datetime.combine(self.first, time(), tzinfo=SERVICE_OFFSET).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The moment after the last day, in UTC (the window is [start, end))."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=SERVICE_OFFSET).astimezone(UTC)

    def holds(self, column: ColumnElement) -> ColumnElement[bool]:
        """SQL: the timestamp column lies in the window (a range an index on the column can serve)."""
        return (column >= self.start) & (column < self.end)

    def points(self, per_day: Mapping[date, int]) -> list[tuple[date, int]]:
        """(day, value) for every day of the window, 0 where `per_day` has none: a chart's series."""
        return [(day, int(per_day.get(day, 0))) for day in self.days]


def day_window(days: int = DEFAULT_WINDOW_DAYS, *, now: datetime | None = None) -> DayWindow:
    """The window of the last `days` service days up to today."""
    today = service_day(now or utcnow())
    return DayWindow(today - timedelta(days=days - 1), today)


def parse_window_days(raw: str | None) -> int:
    """The window a page was asked for (30 or 90 days); anything else is the default."""
    return int(raw) if raw in {str(days) for days in WINDOW_DAYS} else DEFAULT_WINDOW_DAYS


def service_date(column: ColumnElement) -> ColumnElement:
    """SQL for the service day (Asia/Shanghai date) of a UTC timestamp column, on whichever database is bound:
    PostgreSQL converts the timestamptz to Shanghai wall time; SQLite's naive UTC text is shifted by +8 hours
    (no daylight saving there)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("Asia/Shanghai", column), type_=Date)
    return func.date(column, "+8 hours", type_=Date)


def per_day(rows: Any) -> dict[date, int]:
    """(day, value) rows of a GROUP BY on `service_date` as a dict (SQLite answers date() with text)."""
    found: dict[date, int] = {}
    for day, value in rows:
        found[date.fromisoformat(day) if isinstance(day, str) else day] = int(value or 0)
    return found
