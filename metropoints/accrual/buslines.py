"""Bus lines the partner feed may name, each with the average trip distance operators set. Flush, never commit."""

from __future__ import annotations

import re

from sqlalchemy import select

from metropoints.accrual.errors import BadBusLine
from metropoints.accrual.models import BusLine
from metropoints.core.db import db
from metropoints.core.models import User
from metropoints.core.operations import record_audit
from metropoints.core.timeutil import utcnow

LINE_CODE_RE = re.compile(r"^[0-9A-Za-z\u4e00-\u9fff][0-9A-Za-z\u4e00-\u9fff_.-]{0,15}$")
MAX_AVG_TRIP_M = 100_000


def set_bus_line(*, code: str, name: str = "", avg_trip_m: int | None, actor: User | None,
                 actor_label: str = "") -> BusLine:
    """Add a bus line or change its name and average trip distance (None: the city default); audited.

    Trips already credited keep the distance they were credited with.
    """
    code = (code or "").strip()
    if not LINE_CODE_RE.match(code):
        raise BadBusLine("A line code has 1 to 16 letters, digits, '_', '-' or '.'.", field="code")
    name = (name or "").strip()
    if len(name) > 120:
        raise BadBusLine("A line name has at most 120 characters.", field="name")
    if avg_trip_m is not None and (isinstance(avg_trip_m, bool) or not isinstance(avg_trip_m, int)
                                   or not 0 < avg_trip_m <= MAX_AVG_TRIP_M):
        raise BadBusLine(f"The average trip distance is a whole number of metres from 1 to {MAX_AVG_TRIP_M}.",
                         field="avg_trip_m")
    label = actor_label or (actor.email if actor else "cli")
    line = db.session.get(BusLine, code)
    if line is None:
        line = BusLine(code=code)
        db.session.add(line)
    line.name, line.avg_trip_m, line.updated_at, line.updated_by = name, avg_trip_m, utcnow(), label
    db.session.flush()
    record_audit(actor=actor, actor_label=label, action="buslines.set", subject=f"bus_line:{code}",
                 reason=f"{name or code}: " + (f"{avg_trip_m} m a trip" if avg_trip_m else "the city default"))
    return line


def bus_lines() -> list[BusLine]:
    """Every bus line, by code."""
    return list(db.session.scalars(select(BusLine).order_by(BusLine.code)))
