"""Accrual operations: partners, the trip feed (API calls and files), rider links. Flush, never commit."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import islice

from flask import current_app
from sqlalchemy import func, select, text, update

from metropoints.accrual.allocation import allocate_cte, epoch_sql
from metropoints.accrual.errors import RefLinkedElsewhere, TooManyTrips
from metropoints.accrual.ingest import (
    ALL_FIELDS,
    SOURCE_RE,
    TRIP_FIELDS,
    BatchResult,
    _dialect_sql,
    ingest_rows,
    lock_riders,
    post_trip_credits,
)
from metropoints.accrual.models import BatchStatus, Partner, RiderLink, Trip, TripBatch, TripBatchChunk, TripStatus
from metropoints.accrual.rollups import add_trips, record_trip_changes
from metropoints.core.db import db, sql_param
from metropoints.core.errors import InvalidInput, NotFound
from metropoints.core.models import Rider, TokenKind
from metropoints.core.operations import issue_token, record_audit
from metropoints.core.timeutil import service_day, utcnow


def create_partner(*, name: str, actor_label: str) -> tuple[Partner, str]:
    """A trip-feed partner and its bearer token (returned once; only its hash is stored)."""
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise InvalidInput("A partner needs a name of 1 to 64 characters.", field="name")
    if db.session.scalar(select(Partner.id).where(Partner.name == name)) is not None:
        raise InvalidInput(f"A partner named {name!r} exists.", field="name")
    partner = Partner(name=name)
    db.session.add(partner)
    db.session.flush()
    raw, _ = issue_token(kind=TokenKind.partner, subject_id=partner.id, label=f"partner {name}")
    record_audit(actor=None, actor_label=actor_label, action="partner.create", subject=f"partner:{partner.id}")
    return partner, raw


def get_partner(name: str) -> Partner:
    """The partner of that name."""
    partner = db.session.scalar(select(Partner).where(Partner.name == name))
    if partner is None:
        raise NotFound(f"No partner named {name!r}.")
    return partner


def receive_trips(*, partner: Partner, payload: object, now: datetime | None = None) -> BatchResult:
    """One call of the partner feed: `{"trips": [...]}`, up to TRIPS_MAX_PER_CALL rows, credited in one batch."""
    if not isinstance(payload, dict) or not isinstance(payload.get("trips"), list):
        raise InvalidInput('The body must be {"trips": [...]}.', field="trips")
    rows = payload["trips"]
    limit = current_app.config["TRIPS_MAX_PER_CALL"]
    if len(rows) > limit:
        raise TooManyTrips(f"At most {limit} trips per call; split the batch.", limit=limit)
    batch = TripBatch(partner_id=partner.id, channel="api", status=BatchStatus.processing, rows_total=len(rows))
    db.session.add(batch)
    db.session.flush()
    result = ingest_rows(batch=batch, rows=rows, now=now)
    batch.status = BatchStatus.done
    batch.finished_at = utcnow()
    db.session.flush()
    return result


def read_trip_csv(stream: io.TextIOBase) -> Iterator[dict]:
    """Rows of a trip file (the feed's keys as the header). Extra columns are ignored, missing ones refused later.

    A file without a `mode` column is metro's and needs its columns; with one, it needs the common columns and each
    row is checked against its mode's (an empty cell is an absent key). NUL bytes are dropped before parsing (the
    csv module cannot read them); the row then fails its checks.
    """
    reader = csv.DictReader(line.replace("\x00", "") for line in stream)
    try:
        header = reader.fieldnames or []
        needed = TRIP_FIELDS if "mode" not in header else ("trip_id", "source", "rider_ref")
        missing = [name for name in needed if name not in header]
        if missing:
            raise InvalidInput("The file's header lacks: " + ", ".join(missing), field="header")
        columns = [name for name in ALL_FIELDS if name in header]
        for row in reader:
            yield {name: row.get(name) for name in columns}
    except (csv.Error, UnicodeDecodeError) as error:
        raise InvalidInput(f"The file is not UTF-8 CSV at line {reader.line_num}: {error}", field="file") from None


def store_trip_file(*, partner: Partner, filename: str, rows: Iterable[dict],
                    chunk_rows: int | None = None) -> tuple[TripBatch, list[int]]:
    """Store a file's rows as chunks of one batch; returns the batch and its chunk ids, in file order (the caller
    queues a job per chunk: `accrual.jobs.start_file_import`)."""
    size = chunk_rows or current_app.config["TRIPS_CHUNK_ROWS"]
    batch = TripBatch(partner_id=partner.id, channel="file", filename=filename[:255], status=BatchStatus.processing)
    db.session.add(batch)
    db.session.flush()
    iterator = iter(rows)
    total, chunk_no, chunk_ids = 0, 0, []
    while chunk := list(islice(iterator, size)):
        chunk_no += 1
        record = TripBatchChunk(batch_id=batch.id, chunk_no=chunk_no, first_line=total + 2,
                                rows_json=json.dumps(chunk, ensure_ascii=False))
        db.session.add(record)
        db.session.flush()
        total += len(chunk)
        chunk_ids.append(record.id)
    batch.rows_total = total
    if chunk_no == 0:
        batch.status, batch.finished_at = BatchStatus.done, utcnow()
    db.session.flush()
    return batch, chunk_ids


def process_chunk(chunk_id: int) -> BatchResult | None:
    """Credit one chunk of a file; a chunk already done is left alone, so a retried job changes nothing."""
    chunk = db.session.scalar(select(TripBatchChunk).where(TripBatchChunk.id == chunk_id).with_for_update())
    if chunk is None or chunk.done_at is not None:
        return None
    batch = db.session.get(TripBatch, chunk.batch_id)
    result = ingest_rows(batch=batch, rows=json.loads(chunk.rows_json or "[]"), first_line=chunk.first_line)
    chunk.done_at = utcnow()
    chunk.rows_json = None
    db.session.flush()
    remaining = db.session.scalar(select(func.count()).select_from(TripBatchChunk).where(
        TripBatchChunk.batch_id == batch.id, TripBatchChunk.done_at.is_(None)))
    if remaining == 0:
        db.session.execute(update(TripBatch).where(TripBatch.id == batch.id, TripBatch.status == BatchStatus.processing)
                           .values(status=BatchStatus.done, finished_at=utcnow()))
    return result


def link_rider_ref(*, rider: Rider, source: object, ref: object,
                   now: datetime | None = None) -> tuple[RiderLink, int]:
    """Link an account reference to a rider and credit the trips held for it (30 days back at most).

    Returns the link and the number of held trips credited. Linking a reference the rider already has is a no-op.
    """
    if not isinstance(source, str) or not SOURCE_RE.match(source.strip()):
        raise InvalidInput("source must be lower-case letters, digits, '_', '-' or '.'.", field="source")
    if not isinstance(ref, str) or not 0 < len(ref.strip()) <= 64:
        raise InvalidInput("ref must have 1 to 64 characters.", field="ref")
    source, ref = source.strip(), ref.strip()
    now = now or utcnow()
    db.session.execute(text(
        "INSERT INTO rider_links (rider_id, source, ref, created_at) VALUES (:rider, :source, :ref, :now) "
        "ON CONFLICT (source, ref) DO NOTHING"), {"rider": rider.id, "source": source, "ref": ref,
                                                  "now": sql_param(now)})
    link = db.session.scalar(select(RiderLink).where(RiderLink.source == source, RiderLink.ref == ref))
    if link.rider_id != rider.id:
        raise RefLinkedElsewhere()
    return link, credit_held_trips(rider_id=rider.id, source=source, ref=ref, now=now)


def credit_held_trips(*, rider_id: int, source: str, ref: str, now: datetime) -> int:
    """Credit a reference's held trips to its rider, under the same daily cap as live trips."""
    pks = _credit_held(rider_id=rider_id, source=source, ref=ref, now=now)
    if pks:
        add_trips(", ".join(pks))
    return len(pks)


def _credit_held(*, rider_id: int, source: str, ref: str, now: datetime) -> list[str]:
    """Credit a reference's held trips to its rider (locked here) and post their entries; the trips' ids, for the
    caller to add to the rollup once."""
    config = current_app.config
    since = now - timedelta(days=config["HELD_TRIP_DAYS"])
    since_day = service_day(since)  # every statement names it, so PostgreSQL reads only the months from it on
    lock_riders("SELECT CAST(:rider AS integer)", {"rider": rider_id})
    pks = list(db.session.scalars(select(Trip.id).where(
        Trip.status == TripStatus.held, Trip.source == source, Trip.rider_ref == ref, Trip.exited_at >= since,
        Trip.service_day >= since_day)))
    if not pks:
        return []
    listed = ", ".join(str(int(pk)) for pk in pks)
    db.session.execute(text(_dialect_sql(
        "WITH cand AS (SELECT t.id AS pk, CAST(:rider AS integer) AS rider_id, t.service_day, t.entered_at, "
        f"t.exited_at, t.id AS ord, t.distance_m, t.rule_version_id, t.mode, t.steps, t.source, t.entry_station, "
        f"t.exit_station, {epoch_sql('t.entered_at')} AS entered_s, {epoch_sql('t.exited_at')} AS exited_s "
        f"FROM trips t WHERE t.id IN ({listed}) "
        # A held trip may be a ride another source reported and got credited for: it is a duplicate then; and it is
        # held for review by the same patterns as a live trip, counting the rider's stored trips of its day.
        "AND t.service_day >= :since_day), " + allocate_cte(checks=True, review=config["REVIEW_FARMED_TRIPS"]) +
        " UPDATE trips SET rider_id = allocated.rider_id, points = allocated.points, status = allocated.status, "
        "reason = allocated.reason, distance_m = allocated.distance_eff, co2e_grams = allocated.co2e_grams, "
        "credited_at = :now FROM allocated WHERE trips.id = allocated.pk AND trips.service_day = allocated.service_day "
        "AND trips.service_day >= :since_day")),
        {"rider": rider_id, "now": sql_param(now), "since_day": sql_param(since_day),
         "review_day": config["REVIEW_TRIPS_PER_DAY"], "review_pair": config["REVIEW_BACK_AND_FORTH"]})
    post_trip_credits(listed, now=now, since_day=since_day)
    record_trip_changes(listed)
    db.session.expire_all()
    return [str(int(pk)) for pk in pks]


def sweep_held_trips(*, now: datetime | None = None) -> int:
    """Credit held trips whose reference has been linked since they arrived.

    A trip that arrives while its reference is being linked can miss the link (neither transaction sees the
    other's rows); this sweep, scheduled every few minutes, credits it. Returns the number of trips credited.
    """
    now = now or utcnow()
    since = now - timedelta(days=current_app.config["HELD_TRIP_DAYS"])
    pairs = db.session.execute(
        select(RiderLink.rider_id, Trip.source, Trip.rider_ref).distinct()
        .join(RiderLink, (RiderLink.source == Trip.source) & (RiderLink.ref == Trip.rider_ref))
        .where(Trip.status == TripStatus.held, Trip.exited_at >= since, Trip.service_day >= service_day(since))).all()
    # Every rider first (in id order, as a batch locks them), the rollup's day rows last (in key order, one upsert):
    # the order a batch takes them in, so a sweep and a batch never wait on each other in a circle.
    if pairs:
        lock_riders(" UNION ALL ".join(f"SELECT CAST({int(rider_id)} AS integer)" for rider_id, _, _ in pairs))
    pks = [pk for rider_id, source, ref in pairs
           for pk in _credit_held(rider_id=rider_id, source=source, ref=ref, now=now)]
    if pks:
        add_trips(", ".join(pks))
    return len(pks)
