"""Trips of every mode, credited the way the accrual writers credit them: the trip row (and its key), its ledger
entry and the rider's balance (accrual.ingest.post_trip_credits), its day's rollup row (accrual.rollups.add_trips).

The partner feed of this branch takes metro rows only, so bus, bike and walking trips go in through this; the points
and grams follow the mode's rule version in force at the trip's exit (walking: points per 1,000 steps above the
threshold, metres = steps x the step length)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from itertools import count

from metropoints.accrual.ingest import post_trip_credits
from metropoints.accrual.models import Trip, TripKey, TripMode, TripStatus
from metropoints.accrual.rollups import add_trips
from metropoints.accrual.rules import load_rulebook
from metropoints.core.db import db
from metropoints.core.timeutil import service_day, utcnow

_numbers = count(1)


def figures(mode: TripMode, at: datetime, *, metres: int = 0, steps: int | None = None) -> tuple[int, int, int, int]:
    """(rule version id, metres, points, grams) of a trip of `mode` ending at `at`, by the version in force then."""
    version = load_rulebook().version_for(at, mode)
    if mode == TripMode.walk:
        metres = (steps or 0) * version.mm_per_step // 1000
        above = max((steps or 0) - version.steps_threshold, 0)
        points = Decimal(above * version.points_per_1000_steps_milli) / 1_000_000
    else:
        points = Decimal(metres * version.points_per_km_milli) / 1_000_000
    grams = (Decimal(metres) * version.co2e_mg_per_km / 1_000_000).quantize(Decimal(1), ROUND_HALF_UP)
    return version.id, metres, int(points.to_integral_value(ROUND_FLOOR)), int(grams)


def credit_trip(*, rider_id: int, mode: TripMode | str = TripMode.metro, metres: int = 6065, steps: int | None = None,
                exited_at: datetime | None = None, source: str = "app", trip_id: str | None = None,
                line: str | None = None) -> Trip:
    """A credited trip of `mode` for the rider (flushed, not committed): its entry posted, its rollup row added."""
    mode = TripMode(mode)
    end = exited_at or utcnow() - timedelta(hours=1)
    version_id, metres, points, grams = figures(mode, end, metres=metres, steps=steps)
    trip = Trip(source=source, trip_id=trip_id or f"{mode.value}-{next(_numbers)}", batch_id=0,
                   rider_ref=f"rider-{rider_id}", rider_id=rider_id, mode=mode,
                   entry_station="0109" if mode == TripMode.metro else "",
                   exit_station="0114" if mode == TripMode.metro else "",
                   line=line or ("268" if mode == TripMode.bus else None),
                   steps=steps if mode == TripMode.walk else None, entered_at=end - timedelta(minutes=20),
                   exited_at=end, service_day=service_day(end), distance_m=metres, rule_version_id=version_id,
                   points=points, co2e_grams=grams, status=TripStatus.credited, credited_at=utcnow())
    db.session.add(trip)
    db.session.flush()
    db.session.add(TripKey(source=trip.source, trip_id=trip.trip_id, trip_pk=trip.id, service_day=trip.service_day))
    db.session.flush()
    post_trip_credits(str(int(trip.id)), now=utcnow(), since_day=trip.service_day)
    add_trips(str(int(trip.id)))
    return trip
