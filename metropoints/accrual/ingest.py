"""Trip ingestion, set-wise: rows are checked in one pass, staged in bulk, then credited by a few SQL statements.

A batch runs in one transaction:
1. check every row (each mode's shape, stations or bus line, times, distance, speed, steps: accrual.checks) in
   Python against the in-memory network and bus lines, and pick the mode's rule version in force at the exit;
   refused rows are recorded with their reason;
2. stage the good rows in a temporary table (COPY on PostgreSQL);
3. look up each staged trip's rider by its link and lock the riders the batch credits, in id order (one statement
   on PostgreSQL), so two batches for one rider never both fill the same cap;
4. after the locks, one statement claims each staged (source, trip_id) in trip_keys (a resend finds its key taken,
   in whatever month, and is left out), finds the same physical trip reported by another source and the walking days
   already counted (status duplicate), the patterns held for review (status review), allocates points under the
   per-mode and daily caps (accrual.allocation: window functions over the batch, one index probe of the rider's
   stored trips per trip), inserts the claimed trips, posts one ledger entry per credited trip, adds the
   sums to the balances and the riders' carbon accounts (one UPDATE of each rider's row), and adds the batch's trips
   to the day's rollup (accrual.rollups: one aggregated upsert per batch). Duplicates and trips under review are
   stored with their reason and no points.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from flask import current_app
from sqlalchemy import insert, select, text, update

from metropoints.accrual.allocation import allocate_cte, epoch_sql
from metropoints.accrual.checks import (  # noqa: F401 (the feed's names, imported from here by its callers)
    ALL_FIELDS,
    SOURCE_RE,
    STAGE_COLUMNS,
    TRIP_FIELDS,
    Rejected,
    check_rows,
)
from metropoints.accrual.models import BusLine, TripBatch, TripRejection
from metropoints.accrual.network import Network, get_network
from metropoints.accrual.rollups import add_trips, add_trips_sql, credit_riders_sql
from metropoints.accrual.rules import load_rulebook
from metropoints.core.db import db, is_postgres, sql_param
from metropoints.core.timeutil import utcnow


@dataclass(slots=True)
class BatchResult:
    """What became of a batch's rows; the counts add up to the rows given."""

    credited: int = 0
    capped: int = 0
    duplicates: int = 0
    held: int = 0
    review: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def as_reply(self) -> dict:
        """The partner feed's reply body."""
        return {"credited": self.credited, "duplicates": self.duplicates, "held": self.held, "capped": self.capped,
                "review": self.review,
                "rejected": [{"trip_id": r.trip_id, "reason": r.reason, "line": r.line_no} for r in self.rejected]}


def _dialect_sql(sql: str) -> str:
    """Spell the two functions whose names differ: GREATEST/LEAST on PostgreSQL, MAX/MIN on SQLite."""
    if is_postgres():
        return sql.replace("{greatest}", "GREATEST").replace("{least}", "LEAST")
    return sql.replace("{greatest}", "MAX").replace("{least}", "MIN")


STAGE_DDL = """
CREATE TEMPORARY TABLE IF NOT EXISTS trip_stage (
    line_no integer, source varchar(32), trip_id varchar(64), rider_ref varchar(64),
    entry_station varchar(8), exit_station varchar(8), entered_at {ts}, exited_at {ts}, service_day date,
    distance_m integer, rule_version_id integer, mode varchar(8), line varchar(16), steps integer,
    rider_id integer) {on_commit}
"""
ALLOC_DDL = """
CREATE TEMPORARY TABLE IF NOT EXISTS trip_alloc (
    line_no integer, source varchar(32), trip_id varchar(64), rider_id integer, points integer,
    co2e_grams integer, status varchar(16), reason varchar(32), distance_m integer)
"""
# PostgreSQL types of STAGE_COLUMNS, for a binary COPY (about 5x faster than text for times and dates).
STAGE_TYPES = ("integer", "varchar", "varchar", "varchar", "varchar", "varchar", "timestamptz", "timestamptz", "date",
               "integer", "integer", "varchar", "varchar", "integer")

# Points under the caps, duplicates and review: accrual.allocation.allocate_cte (one set of CTEs after `cand`).
# The staged trips, with their riders (NULL: nobody linked the reference), as `cand` for it.
def staged_cand(*, claimed: bool = False) -> str:
    """`cand` for allocate_cte: the staged trips, their order in the batch and their times in epoch seconds.

    With `claimed`, only the trips whose (source, trip_id) the statement's `claim` (CLAIM_KEYS) just claimed, each
    with its `trip_pk`: a key claimed already (a resend) is left out before the allocation, so it takes no room
    under the caps. The statement runs after the riders' locks, so the trips of these riders stored by other batches
    are visible to it; a held one racing in from elsewhere is caught by the claim's ON CONFLICT (it waits for that
    transaction, then skips the key)."""
    epochs = f"{epoch_sql('s.entered_at')} AS entered_s, {epoch_sql('s.exited_at')} AS exited_s"
    if not claimed:
        return f"cand AS (SELECT s.*, s.line_no AS ord, {epochs} FROM trip_stage s), "
    # MATERIALIZED: inlined, it was read once per rule version (a nested loop with the rule versions outside).
    return (f"cand AS MATERIALIZED (SELECT s.*, k.trip_pk, s.line_no AS ord, {epochs} FROM trip_stage s "
            "JOIN claim k ON k.source = s.source AND k.trip_id = s.trip_id), ")


TRIP_COLUMNS = ("source, trip_id, batch_id, rider_ref, rider_id, entry_station, exit_station, entered_at, exited_at, "
                "service_day, distance_m, rule_version_id, points, co2e_grams, status, credited_at, mode, line, steps, "
                "reason")
# One insertion order for a given set of rows (exit time, then key), so concurrent deliveries of the same trips
# take the unique index's locks in the same order, and trip ids follow exit times. SQLite inserts this way; PostgreSQL
# claims the keys in that order (CLAIM_KEYS).
INSERT_TRIPS = (
    f"INSERT INTO trips ({TRIP_COLUMNS}) "
    "SELECT a.source, a.trip_id, :batch_id, a.rider_ref, a.rider_id, a.entry_station, a.exit_station, a.entered_at, "
    "a.exited_at, a.service_day, a.distance_m, a.rule_version_id, a.points, a.co2e_grams, a.status, "
    "CASE WHEN a.rider_id IS NULL THEN NULL ELSE :now END, a.mode, a.line, a.steps, a.reason "
    "FROM {source} a WHERE 1 = 1 "
    "ORDER BY a.exited_at, a.source, a.trip_id ON CONFLICT (source, trip_id) DO NOTHING")
# PostgreSQL: trips is partitioned by month, so (source, trip_id) is unique in trip_keys, not in trips. Each staged
# trip claims its key first, taking its id from the trips' sequence (in exit-time order); only the trips whose claim
# went in are allocated and inserted, so a resend is skipped whichever month its exit falls in. (The claim is the one
# probe of trip_keys per trip: leaving the resends out by a probe of their own, then claiming, read the index twice.)
CLAIM_KEYS = (
    "INSERT INTO trip_keys (source, trip_id, trip_pk, service_day) "
    "SELECT o.source, o.trip_id, nextval('trips_id_seq'), o.service_day FROM (SELECT s.source, s.trip_id, "
    "s.service_day FROM trip_stage s ORDER BY s.exited_at, s.source, s.trip_id) o "
    "ON CONFLICT (source, trip_id) DO NOTHING RETURNING source, trip_id, trip_pk")
INSERT_CLAIMED_TRIPS = (
    f"INSERT INTO trips (id, {TRIP_COLUMNS}) "
    "SELECT a.trip_pk, a.source, a.trip_id, :batch_id, a.rider_ref, a.rider_id, a.entry_station, a.exit_station, "
    "a.entered_at, a.exited_at, a.service_day, a.distance_eff, a.rule_version_id, a.points, a.co2e_grams, a.status, "
    "CASE WHEN a.rider_id IS NULL THEN NULL ELSE :now END, a.mode, a.line, a.steps, a.reason FROM allocated a")
# SQLite: trips keeps its unique (source, trip_id); the keys of the trips just inserted are recorded after them.
RECORD_KEYS = (
    "INSERT INTO trip_keys (source, trip_id, trip_pk, service_day) "
    "SELECT t.source, t.trip_id, t.id, t.service_day FROM trip_alloc a "
    "JOIN trips t ON t.source = a.source AND t.trip_id = a.trip_id WHERE t.batch_id = :batch_id "
    "ON CONFLICT (source, trip_id) DO NOTHING")
LEDGER_COLUMNS = "rider_id, at, earned_on, points, kind, trip_pk, rule_version_id, ref, reason, actor, balance_after"
# One entry per credited trip; balance_after follows each rider's running sum in exit-time order.
LEDGER_SELECT = (
    "SELECT t.rider_id, :now, t.service_day, t.points, 'trip', t.id, t.rule_version_id, t.source || ':' || t.trip_id, "
    "'', '', r.points_balance + SUM(t.points) OVER (PARTITION BY t.rider_id ORDER BY t.exited_at, t.id "
    "ROWS UNBOUNDED PRECEDING) FROM {source} t JOIN riders r ON r.id = t.rider_id WHERE t.points > 0")
BALANCE_UPDATE = (
    "UPDATE riders SET points_balance = riders.points_balance + agg.total "
    "FROM (SELECT t.rider_id, SUM(t.points) AS total FROM {source} t WHERE t.points > 0 GROUP BY t.rider_id) agg "
    "WHERE riders.id = agg.rider_id")


def _stage(staged: list[tuple]) -> None:
    """Put the checked rows in the session's temporary stage table: COPY on PostgreSQL, a bulk insert elsewhere."""
    session = db.session
    postgres = is_postgres()
    session.execute(text(STAGE_DDL.format(ts="timestamptz" if postgres else "timestamp",
                                          on_commit="ON COMMIT DELETE ROWS" if postgres else "")))
    session.execute(text("DELETE FROM trip_stage"))  # empty after a commit already; not after a savepoint
    if postgres:
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(
                f"COPY trip_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(STAGE_TYPES)
            for row in staged:
                copy.write_row(row)
    else:
        rows = [dict(zip(STAGE_COLUMNS, (*r[:6], sql_param(r[6]), sql_param(r[7]), sql_param(r[8]), *r[9:]),
                         strict=True)) for r in staged]
        session.execute(text(f"INSERT INTO trip_stage ({', '.join(STAGE_COLUMNS)}) VALUES "
                             f"({', '.join(':' + c for c in STAGE_COLUMNS)})"), rows)


def lock_riders(rider_ids_sql: str, params: dict | None = None) -> None:
    """Lock the riders a statement is about to credit or debit, in id order, so concurrent batches queue up.

    `rider_ids_sql` is a SELECT of one column of rider ids (NULLs and repeats are fine).

    SQLite has one writer at a time, so there is nothing to lock there.
    """
    if is_postgres():
        # `= ANY(ARRAY(...))` walks the primary key for just these ids, already in id order.
        db.session.execute(text(f"WITH x(i) AS MATERIALIZED ({rider_ids_sql}) SELECT id FROM riders "
                                "WHERE id = ANY(ARRAY(SELECT DISTINCT i FROM x WHERE i IS NOT NULL)) "
                                "ORDER BY id FOR UPDATE"), params or {})


def _credit_staged(batch_id: int, now: datetime, *, walk: bool = True,
                   mode_caps: bool = True) -> tuple[int, dict[str, int]]:
    """Insert the staged trips, crediting the linked ones; return (trips inserted, counts by status).

    `walk` and `mode_caps` say whether the batch has walking days and rule versions with a cap of their mode (the
    statement leaves out what it does not need)."""
    session = db.session
    # Links never change once made, so each staged trip's rider can be looked up before the locks: one probe of
    # the (source, ref) index per row (a scalar subquery is never turned into a join to misplan). On PostgreSQL
    # the lookup and the locks are one statement.
    find_riders = ("UPDATE trip_stage SET rider_id = (SELECT l.rider_id FROM rider_links l "
                   "WHERE l.source = trip_stage.source AND l.ref = trip_stage.rider_ref)")
    if is_postgres():
        # This unit of work's statements are planned for their parameters. psycopg prepares a statement at its fifth
        # run on a connection, and PostgreSQL may then keep a generic plan costed on the statistics of that moment;
        # one made while a month's partition was empty and analyzed so (partitions are made ahead) scans that
        # partition in full for every staged trip's rider once the month fills, until it is analyzed again (never,
        # with autovacuum off). bench/accrual.py measured 10-70 s a call that way, against 0.7 s planned afresh.
        # Only here: the hot paths' statements keep their generic plans (planning the sale's statement at every
        # run cost 0.17 ms of PostgreSQL's CPU per sale).
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        lock_riders(find_riders + " RETURNING rider_id")
    else:
        session.execute(text(find_riders))
        # SQLite has one writer at a time: the resends can go before the crediting statement. (PostgreSQL leaves
        # them out by that statement's claim of the keys, after the locks.)
        session.execute(text(
            "DELETE FROM trip_stage WHERE EXISTS (SELECT 1 FROM trip_keys k WHERE k.source = trip_stage.source "
            "AND k.trip_id = trip_stage.trip_id)"))
    config = current_app.config
    review = config["REVIEW_FARMED_TRIPS"]
    params = {"batch_id": batch_id, "now": sql_param(now), "review_day": config["REVIEW_TRIPS_PER_DAY"],
              "review_pair": config["REVIEW_BACK_AND_FORTH"]}
    if is_postgres():
        # One statement: allocate, insert the trips, move the balances and post the ledger entries. Every part of
        # it reads the snapshot the statement started with, so `led` sees each (locked) rider's balance before
        # `bal` moves it, and counts balance_after on from there. `led` joins the riders by their primary key: a
        # join of the two CTEs' outputs, whose sizes the planner cannot know, became a nested loop of 10,000 x
        # 10,000 rows (13 s a batch).
        counts = dict(session.execute(text(_dialect_sql(
            "WITH claim AS (" + CLAIM_KEYS + "), " + staged_cand(claimed=True)
            + allocate_cte(checks=True, review=review, walk=walk, mode_caps=mode_caps) + ", "
            "ins AS (" + INSERT_CLAIMED_TRIPS +
            " RETURNING id, rider_id, points, exited_at, service_day, rule_version_id, source, trip_id, status, "
            "distance_m, co2e_grams, mode), "
            "bal AS (" + credit_riders_sql("ins") + "), "
            f"led AS (INSERT INTO ledger_entries ({LEDGER_COLUMNS}) " + LEDGER_SELECT.format(source="ins") + "), "
            "days AS (" + add_trips_sql("ins") + ") "
            "SELECT status, COUNT(*) FROM ins GROUP BY status")), params).all())
        return sum(counts.values()), counts
    session.execute(text(ALLOC_DDL))
    session.execute(text("DELETE FROM trip_alloc"))
    session.execute(text(_dialect_sql(
        "WITH " + staged_cand() + allocate_cte(checks=True, review=review, walk=walk, mode_caps=mode_caps) + " "
        "INSERT INTO trip_alloc (line_no, source, trip_id, rider_id, points, co2e_grams, status, reason, distance_m) "
        "SELECT line_no, source, trip_id, rider_id, points, co2e_grams, status, reason, distance_eff FROM allocated")),
        params)
    alloc = ("(SELECT s.line_no, s.source, s.trip_id, s.rider_ref, s.entry_station, s.exit_station, s.entered_at, "
             "s.exited_at, s.service_day, s.rule_version_id, s.mode, s.line, s.steps, a.distance_m, a.rider_id, "
             "a.points, a.co2e_grams, a.status, a.reason FROM trip_alloc a JOIN trip_stage s ON s.line_no = a.line_no)")
    inserted = session.execute(text(INSERT_TRIPS.format(source=alloc)), params).rowcount
    session.execute(text(RECORD_KEYS), params)
    post_trip_credits("SELECT t.id FROM trip_alloc a JOIN trips t ON t.source = a.source AND t.trip_id = a.trip_id "
                      "WHERE a.rider_id IS NOT NULL AND a.points > 0", now=now)
    add_trips("SELECT t.id FROM trip_alloc a JOIN trips t ON t.source = a.source AND t.trip_id = a.trip_id "
              "WHERE a.rider_id IS NOT NULL")
    counts = dict(session.execute(text("SELECT status, COUNT(*) FROM trip_alloc GROUP BY status")).all())
    counts["held"] = inserted - sum(counts.get(k, 0) for k in ("credited", "capped", "duplicate", "review"))
    return inserted, counts


def post_trip_credits(trip_pks_sql: str, *, now: datetime, params: dict | None = None,
                      since_day: date | None = None) -> None:
    """Post one ledger entry per credited trip named by `trip_pks_sql` and add them to the riders' balances.

    The riders must be locked already. `since_day`, when given, is a service day no earlier than any of the trips',
    so PostgreSQL reads only the months from it on.
    """
    params = {**(params or {}), "now": sql_param(now)}
    day_bound = ""
    if since_day is not None:
        params["since_day"] = sql_param(since_day)
        day_bound = " AND service_day >= :since_day"
    trips = f"(SELECT * FROM trips WHERE id IN ({trip_pks_sql}){day_bound})"
    db.session.execute(text(f"INSERT INTO ledger_entries ({LEDGER_COLUMNS}) " + LEDGER_SELECT.format(source=trips)),
                       params)
    db.session.execute(text(BALANCE_UPDATE.format(source=trips)), params)


def record_rejections(batch_id: int, rejected: Sequence[Rejected]) -> None:
    """Keep every refused row with its reason and the row as it came."""
    if rejected:
        db.session.execute(insert(TripRejection), [
            {"batch_id": batch_id, "line_no": r.line_no, "trip_id": r.trip_id[:255], "reason": r.reason,
             "detail": r.detail, "row_json": json.dumps(r.row, default=str)[:4000]}
            for r in rejected])


def add_to_batch(batch_id: int, *, rows: int, result: BatchResult) -> None:
    """Add a slice's counts to its batch in one statement (chunks of one file may be credited side by side)."""
    db.session.execute(
        update(TripBatch).where(TripBatch.id == batch_id).values(
            rows_done=TripBatch.rows_done + rows, credited=TripBatch.credited + result.credited,
            capped=TripBatch.capped + result.capped, held=TripBatch.held + result.held,
            review=TripBatch.review + result.review,
            duplicates=TripBatch.duplicates + result.duplicates, rejected=TripBatch.rejected + len(result.rejected)))


def ingest_rows(*, batch: TripBatch, rows: Sequence[object], first_line: int = 1, now: datetime | None = None,
                network: Network | None = None) -> BatchResult:
    """Check, stage and credit one slice of a batch; add its counts to the batch. Flushes, never commits."""
    now = now or utcnow()
    bus_lines = dict(db.session.execute(select(BusLine.code, BusLine.avg_trip_m)).tuples().all())
    book = load_rulebook()
    staged, rejected, repeats = check_rows(rows, first_line=first_line, network=network or get_network(),
                                           rules=book, now=now, bus_lines=bus_lines,
                                           bus_default_m=current_app.config["BUS_DEFAULT_TRIP_M"])
    record_rejections(batch.id, rejected)
    result = BatchResult(duplicates=repeats, rejected=rejected)
    if staged:
        _stage(staged)
        capped_versions = {v.id for m in book.modes.values() for v in m.versions if v.mode_cap is not None}
        walk = any(row[11] == "walk" for row in staged)
        mode_caps = bool(capped_versions) and any(row[10] in capped_versions for row in staged)
        inserted, counts = _credit_staged(batch.id, now, walk=walk, mode_caps=mode_caps)
        result.credited = counts.get("credited", 0)
        result.capped = counts.get("capped", 0)
        result.review = counts.get("review", 0)
        # A resend of a (source, trip_id), and another report of a trip credited once (kept, status duplicate).
        result.duplicates += len(staged) - inserted + counts.get("duplicate", 0)
        result.held = inserted - result.credited - result.capped - result.review - counts.get("duplicate", 0)
    add_to_batch(batch.id, rows=len(rows), result=result)
    return result
