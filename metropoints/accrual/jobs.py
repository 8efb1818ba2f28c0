"""Accrual jobs: file chunks, the yearly expiry, the monthly partitions. Each takes ids or plain values and is
safe to run twice."""

from __future__ import annotations

from collections.abc import Iterable

from metropoints.accrual.ledger import expire_points
from metropoints.accrual.models import Partner, TripBatch
from metropoints.accrual.operations import process_chunk, store_trip_file, sweep_held_trips
from metropoints.accrual.partitions import create_partitions
from metropoints.core.jobs import enqueue, job
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
    return sweep_held_trips()


@job
def create_partitions_job() -> int:
    """Make the monthly partitions of trips and ledger entries for the coming months (PARTITION_MONTHS_AHEAD).
    Idempotent: a month that exists is left alone."""
    return create_partitions()


def start_file_import(*, partner: Partner, filename: str, rows: Iterable[dict], chunk_rows: int | None = None,
                      enqueue_chunks: bool = True) -> TripBatch:
    """Store a file's rows as chunks of one batch and queue a job per chunk (handed over after the commit)."""
    batch, chunk_ids = store_trip_file(partner=partner, filename=filename, rows=rows, chunk_rows=chunk_rows)
    if enqueue_chunks:
        for chunk_id in chunk_ids:
            enqueue(process_trip_chunk, chunk_id, queue="ingest", retries=2)
    return batch
