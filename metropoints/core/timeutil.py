"""Time: everything is stored in UTC; the service day is the date in Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

SERVICE_ZONE = ZoneInfo("Asia/Shanghai")
# Asia/Shanghai has had no daylight saving since 1991; a fixed offset keeps the hot path cheap.
SERVICE_OFFSET = timezone(timedelta(hours=8))


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def service_day(moment: datetime) -> date:
    """The metro service day of a moment: its date in Asia/Shanghai."""
    return moment.astimezone(SERVICE_OFFSET).date()


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries its offset; raise ValueError for one without."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp without an offset")
    return moment.astimezone(UTC)


def isoformat(moment: datetime | None) -> str | None:
    """ISO 8601 with offset, in the service zone, for replies."""
    return moment.astimezone(SERVICE_OFFSET).isoformat() if moment else None
