"""How pages write dates and times: one way on every page, in the service zone (Asia/Shanghai): 2026-12-02 for a day,
2026-12-02 14:30 for a moment (2026-12-02 14:30:05 in the back office's logs). Templates use the `local_date` and
`local_datetime` filters, registered once here; Python that writes a time for a page (a reply the page's script
shows, a review diff) calls the same functions. (Flask-Babel's `dateformat` / `datetimeformat` write each locale's
own way, 2026/12/2 or 12/2/26: pages do not use them.)"""

from __future__ import annotations

from datetime import date, datetime

from flask import Flask

from metropoints.core.timeutil import SERVICE_ZONE

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M"
WITH_SECONDS = DATETIME_FORMAT + ":%S"


def local_date(value: date | datetime | None) -> str:
    """A day as YYYY-MM-DD; a stored (aware) moment as its day in Asia/Shanghai; "" for none."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(SERVICE_ZONE).date()
    return value.strftime(DATE_FORMAT)


def local_datetime(moment: datetime | None, seconds: bool = False) -> str:
    """A stored (aware) moment as YYYY-MM-DD HH:MM in Asia/Shanghai, or HH:MM:SS with `seconds` (the back office's
    logs and rule versions, where the exact second matters); "" for none."""
    return moment.astimezone(SERVICE_ZONE).strftime(WITH_SECONDS if seconds else DATETIME_FORMAT) if moment else ""


def init_app(app: Flask) -> None:
    """Register the date filters on the app's templates."""
    app.add_template_filter(local_date, "local_date")
    app.add_template_filter(local_datetime, "local_datetime")
