"""Input of the redemption pages: the activity page's period (`from`, `to` as YYYY-MM-DD)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from flask_babel import gettext as _

from metropoints.core.panels import DayWindow
from metropoints.core.timeutil import SERVICE_ZONE, utcnow

DEFAULT_DAYS = 30
MAX_DAYS = 366


def period_from(args: Mapping[str, str]) -> tuple[DayWindow, str | None, dict[str, str]]:
    """The period asked for (`from`, `to`; the last 30 days by default), an error message when the dates are
    invalid (the default period is returned with it), and the raw values for the form."""
    today = utcnow().astimezone(SERVICE_ZONE).date()
    default = DayWindow(today - timedelta(days=DEFAULT_DAYS - 1), today)
    raw = {"from": args.get("from", "").strip(), "to": args.get("to", "").strip()}
    try:
        first = date.fromisoformat(raw["from"]) if raw["from"] else default.first
        last = date.fromisoformat(raw["to"]) if raw["to"] else default.last
    except ValueError:
        return default, _("Dates must be given as YYYY-MM-DD."), raw
    if last < first:
        return default, _("The end date must not be before the start date."), raw
    if (last - first).days >= MAX_DAYS:
        return default, _("The period may span at most %(days)d days.", days=MAX_DAYS), raw
    return DayWindow(first, last), None, raw
