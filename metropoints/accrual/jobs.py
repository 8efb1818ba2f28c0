"""Accrual jobs: file chunks and the yearly expiry. Each takes ids or plain values and is safe to run twice."""

from __future__ import annotations

from metropoints.accrual.ledger import expire_points
from metropoints.accrual.operations import process_chunk
from metropoints.core.jobs import job
from metropoints.core.timeutil import service_day, utcnow


@job
def process_trip_chunk(chunk_id: int) -> dict | None:
    """Credit one chunk of a trip file (a chunk already done is skipped)."""
    result = process_chunk(chunk_id)
    return None if result is None else {k: v for k, v in result.as_reply().items() if k != "rejected"}


@job
def expire_points_job(year: int | None = None) -> int:
    """Expire last year's leftovers of the points earned the year before (the year-end rule). Idempotent."""
    return expire_points(year=year or service_day(utcnow()).year - 1)


@job
def sweep_held_trips_job() -> int:
    """Credit held trips whose reference was linked while they were in flight."""
    from metropoints.accrual.operations import sweep_held_trips

    return sweep_held_trips()
