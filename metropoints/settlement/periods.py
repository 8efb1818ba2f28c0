"""Settlement periods: calendar months in Asia/Shanghai, written YYYY-MM."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

from metropoints.core.timeutil import SERVICE_ZONE, utcnow
from metropoints.settlement.errors import InvalidPeriod

PERIOD_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


def parse_period(value: object) -> date:
    """The first day of the month written YYYY-MM."""
    match = PERIOD_PATTERN.match(value.strip()) if isinstance(value, str) else None
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        raise InvalidPeriod(f"{value!r} is not a month written YYYY-MM.")
    return date(int(match.group(1)), int(match.group(2)), 1)


def next_period(period: date) -> date:
    """The month after."""
    return date(period.year + period.month // 12, period.month % 12 + 1, 1)


def period_of(moment: datetime) -> date:
    """The month a moment falls in, in Asia/Shanghai."""
    local = moment.astimezone(SERVICE_ZONE)
    return date(local.year, local.month, 1)


def previous_period(now: datetime | None = None) -> date:
    """The last month that has ended."""
    current = period_of(now or utcnow())
    return date(current.year - (current.month == 1), (current.month - 2) % 12 + 1, 1)


def period_start(period: date) -> datetime:
    """The month's first moment (Asia/Shanghai midnight), in UTC."""
    return datetime.combine(period, time(), tzinfo=SERVICE_ZONE).astimezone(UTC)


def period_label(period: date) -> str:
    """The month as YYYY-MM."""
    return period.strftime("%Y-%m")
