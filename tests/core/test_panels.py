"""The panel registry and the window panels read: a page shows what packages registered for it, in order, once each;
the window is the last 30 or 90 service days in Asia/Shanghai, with a value for every day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from markupsafe import Markup

from metropoints.core import panels
from metropoints.core.panels import add_panel, day_window, panels_for, parse_window_days, registered


@pytest.fixture
def empty_registry(monkeypatch):
    """A registry of this test's own (the app's panels are left as they are)."""
    monkeypatch.setattr(panels, "_PANELS", {})


def first(**context) -> str:
    """A panel that names the merchant it was given."""
    return f"<p>first {context['merchant']}</p>"


def second(**context) -> Markup:
    """A panel with markup."""
    return Markup("<p>second</p>")


def nothing(**context) -> None:
    """A panel with nothing to show."""
    return None


def test_a_page_shows_its_panels_in_order_with_its_context(empty_registry):
    """panels_for renders each panel registered for the page by `order` (then name), passing the page's keyword
    arguments; a panel that returns nothing is left out; another page's panels are not shown."""
    add_panel("dashboard", second, order=20)
    add_panel("dashboard", first, order=10)
    add_panel("dashboard", nothing, order=15)
    add_panel("elsewhere", second)
    shown = panels_for("dashboard", merchant="Laobian")
    assert shown == [Markup("<p>first Laobian</p>"), Markup("<p>second</p>")]
    assert all(isinstance(markup, Markup) for markup in shown)
    assert panels_for("no-such-page", merchant="x") == []


def test_registering_twice_adds_a_panel_once(empty_registry):
    """Adding the same function to a page again (another create_app in the process) keeps one panel; a name given
    explicitly distinguishes two registrations of one function."""
    add_panel("dashboard", first)
    add_panel("dashboard", first, order=1)
    add_panel("dashboard", first, name="again")
    assert registered("dashboard") == ["again", f"{first.__module__}.first"]


def test_the_window_is_the_last_service_days_up_to_today():
    """A window of 30 days ends today in Asia/Shanghai (after 16:00 UTC it is already tomorrow there) and starts at
    Shanghai midnight; it has a value for each day, 0 where none was counted."""
    late = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)  # 01:00 on 1 April in Shenyang
    window = day_window(30, now=late)
    assert (window.first, window.last, window.size) == (date(2026, 3, 3), date(2026, 4, 1), 30)
    assert window.start == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 4, 1, 16, 0, tzinfo=UTC)
    points = window.points({date(2026, 3, 3): 2, date(2026, 4, 1): 5})
    assert len(points) == 30 and points[0] == (date(2026, 3, 3), 2) and points[-1] == (date(2026, 4, 1), 5)
    assert sum(value for _day, value in points) == 7


@pytest.mark.parametrize(("raw", "days"), [("30", 30), ("90", 90), (None, 30), ("", 30), ("7", 30), ("90 ", 30),
                                           ("-90", 30)])
def test_only_30_or_90_days_are_offered(raw, days):
    """?days= is 30 or 90; anything else is the default 30, never an error."""
    assert parse_window_days(raw) == days
