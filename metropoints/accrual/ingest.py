"""Trip ingestion, set-wise: rows are checked in one pass, staged in bulk, then credited by a few SQL statements.

A batch runs in one transaction:
1. check every row (field shapes, stations, times, speed) in Python against the in-memory network, and pick
   the rule version in force at the exit; refused rows are recorded with their reason;
2. stage the good rows in a temporary table (COPY on PostgreSQL);
3. lock the riders the batch credits, in id order, so two batches for one rider never both fill the same cap;
4. allocate points under the daily cap with one window query, claim each (source, trip_id) in trip_keys and insert
   the trips whose claim went in (a repeated (source, trip_id), in whatever month, is skipped), post one ledger
   entry per credited trip, add the sums to the balances, and add the batch's trips to the day's rollup
   (accrual.rollups: one aggregated upsert per batch).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import insert, text, update

from metropoints.accrual.models import TripBatch, TripRejection
from metropoints.accrual.network import Network, get_network
from metropoints.accrual.rollups import add_trips, add_trips_sql
from metropoints.accrual.rules import RuleBook, load_rulebook
from metropoints.core.db import db, is_postgres, sql_param
from metropoints.core.timeutil import parse_timestamp, service_day, utcnow

TRIP_FIELDS = ("trip_id", "source", "rider_ref", "entry_station", "exit_station", "entered_at", "exited_at")
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
MAX_AGE = timedelta(days=30)
MAX_AHEAD = timedelta(minutes=5)
MAX_KMH = 80

STAGE_COLUMNS = ("line_no", "source", "trip_id", "rider_ref", "entry_station", "exit_station", "entered_at",
                 "exited_at", "service_day", "distance_m", "rule_version_id")


@dataclass(slots=True)
class Rejected:
    """A refused row: where it was, what it said, and why."""

    line_no: int
    trip_id: str
    reason: str
    detail: str
    row: object


@dataclass(slots=True)
class BatchResult:
    """What became of a batch's rows; the counts add up to the rows given."""

    credited: int = 0
    capped: int = 0
    duplicates: int = 0
    held: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def as_reply(self) -> dict:
        """The partner feed's reply body."""
        return {"credited": self.credited, "duplicates": self.duplicates, "held": self.held, "capped": self.capped,
                "rejected": [{"trip_id": r.trip_id, "reason": r.reason, "line": r.line_no} for r in self.rejected]}


def _text(value: object, limit: int) -> str | None:
    """A non-empty printable string of at most `limit` characters, stripped; None for anything else.

    Printable excludes NUL and lone surrogates, which no database column can hold.
    """
    if value.__class__ is not str:
        return None
    value = value.strip()
    return value if 0 < len(value) <= limit and value.isprintable() else None


def _shown_id(row: Mapping) -> str:
    """The trip id of a refused row as far as it can be shown."""
    return "".join(ch for ch in str(row.get("trip_id") or "")[:64] if ch.isprintable())


def check_rows(rows: Iterable[object], *, first_line: int, network: Network, rules: RuleBook,
               now: datetime) -> tuple[list[tuple], list[Rejected], int]:
    """Split rows into staged tuples (STAGE_COLUMNS order), refusals with reasons, and in-batch repeats."""
    staged: list[tuple] = []
    rejected: list[Rejected] = []
    seen: set[tuple[str, str]] = set()
    repeats = 0
    oldest, latest = now - MAX_AGE, now + MAX_AHEAD
    fields = (("trip_id", 64), ("source", 32), ("rider_ref", 64), ("entry_station", 8), ("exit_station", 8))

    stations, distance_m, version_for = network.stations, network.distance_m, rules.version_for
    only_version = rules.versions[0].id if len(rules.versions) == 1 else None

    def refuse(line_no: int, row: object, trip_id: str | None, reason: str, detail: str) -> None:
        rejected.append(Rejected(line_no, trip_id or _shown_id(row), reason, detail, row))

    for line_no, row in enumerate(rows, start=first_line):
        if not isinstance(row, Mapping):
            rejected.append(Rejected(line_no, "", "malformed", "a trip must be an object", row))
            continue
        get = row.get
        trip_id, source, rider_ref = _text(get("trip_id"), 64), _text(get("source"), 32), _text(get("rider_ref"), 64)
        entry, exit_ = _text(get("entry_station"), 8), _text(get("exit_station"), 8)
        if trip_id is None or source is None or rider_ref is None or entry is None or exit_ is None:
            missing = [name for name, limit in fields if _text(get(name), limit) is None]
            refuse(line_no, row, trip_id, "malformed", "missing, too long or not printable text: " + ", ".join(missing))
            continue
        if not SOURCE_RE.match(source):
            refuse(line_no, row, trip_id, "malformed", "source must be lower-case letters, digits, '_', '-' or '.'")
            continue
        try:
            entered_at = parse_timestamp(get("entered_at"))
            exited_at = parse_timestamp(get("exited_at"))
        except (TypeError, ValueError, OverflowError):
            refuse(line_no, row, trip_id, "malformed", "entered_at and exited_at must be ISO 8601 times with an offset")
            continue
        if entry not in stations or exit_ not in stations:
            unknown = exit_ if entry in stations else entry
            refuse(line_no, row, trip_id, "unknown_station", f"unknown station {unknown}")
            continue
        if entry == exit_:
            refuse(line_no, row, trip_id, "same_station", "entry and exit are the same station")
            continue
        if exited_at <= entered_at:
            refuse(line_no, row, trip_id, "bad_times", "exit is not after entry")
            continue
        if exited_at > latest:
            refuse(line_no, row, trip_id, "in_future", "exit is more than 5 minutes in the future")
            continue
        if exited_at < oldest:
            refuse(line_no, row, trip_id, "too_old", "exit is more than 30 days ago")
            continue
        day = service_day(exited_at)
        distance = distance_m(entry, exit_, day)
        if distance is None:
            closed = exit_ if network.is_open(entry, day) else entry
            refuse(line_no, row, trip_id, "station_not_open", f"station {closed} was not open on {day.isoformat()}")
            continue
        if distance * 3600 > MAX_KMH * 1000 * (exited_at - entered_at).total_seconds():
            refuse(line_no, row, trip_id, "implausible_speed", f"{distance / 1000:.3f} km faster than {MAX_KMH} km/h")
            continue
        key = (source, trip_id)
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        staged.append((line_no, source, trip_id, rider_ref, entry, exit_, entered_at, exited_at, day, distance,
                       only_version or version_for(exited_at).id))
    return staged, rejected, repeats


def _dialect_sql(sql: str) -> str:
    """Spell the two functions whose names differ: GREATEST/LEAST on PostgreSQL, MAX/MIN on SQLite."""
    if is_postgres():
        return sql.replace("{greatest}", "GREATEST").replace("{least}", "LEAST")
    return sql.replace("{greatest}", "MAX").replace("{least}", "MIN")


STAGE_DDL = """
CREATE TEMPORARY TABLE IF NOT EXISTS trip_stage (
    line_no integer, source varchar(32), trip_id varchar(64), rider_ref varchar(64),
    entry_station varchar(8), exit_station varchar(8), entered_at {ts}, exited_at {ts}, service_day date,
    distance_m integer, rule_version_id integer, rider_id integer) {on_commit}
"""
ALLOC_DDL = """
CREATE TEMPORARY TABLE IF NOT EXISTS trip_alloc (
    line_no integer, source varchar(32), trip_id varchar(64), rider_id integer, points integer,
    co2e_grams integer, status varchar(16))
"""
# PostgreSQL types of STAGE_COLUMNS, for a binary COPY (about 5x faster than text for times and dates).
STAGE_TYPES = ("integer", "varchar", "varchar", "varchar", "varchar", "varchar", "timestamptz", "timestamptz", "date",
               "integer", "integer")

# Points under the daily cap. `cand` holds the trips to credit, with at least rider_id, service_day, exited_at,
# ord, distance_m and rule_version_id. Each trip earns floor(km x points/km) unless the cap of its rule version
# cuts it; the one that crosses the cap earns the remainder, later ones (by exit time) earn nothing.
# What the rider's day already earned is a correlated subquery, one probe of ix_trips_rider_day per trip: no join
# the planner could turn into a scan of all trips when it misjudges the size of `cand`.
ALLOCATE_CTE = """
raw AS (
    SELECT c.*, c.distance_m * rv.points_per_km_milli / 1000000 AS points_raw, rv.daily_cap,
           (c.distance_m * rv.co2e_mg_per_km + 500000) / 1000000 AS co2e_grams,
           (SELECT SUM(t.points) FROM trips t WHERE t.rider_id = c.rider_id AND t.service_day = c.service_day) AS used
    FROM cand c JOIN rule_versions rv ON rv.id = c.rule_version_id
),
ranked AS (
    SELECT r.*, COALESCE(r.used, 0) + COALESCE(SUM(r.points_raw) OVER (
               PARTITION BY r.rider_id, r.service_day ORDER BY r.exited_at, r.ord
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before_pts
    FROM raw r
),
allocated AS (
    SELECT ranked.*,
           CASE WHEN rider_id IS NULL THEN 0
                ELSE {greatest}(0, {least}(points_raw, daily_cap - before_pts)) END AS points,
           CASE WHEN rider_id IS NULL THEN 'held'
                WHEN points_raw > daily_cap - before_pts THEN 'capped' ELSE 'credited' END AS status
    FROM ranked
)
"""

# The staged trips, with their riders (NULL: nobody linked the reference), as `cand` for ALLOCATE_CTE.
STAGED_CAND = "cand AS (SELECT s.*, s.line_no AS ord FROM trip_stage s), "
TRIP_COLUMNS = ("source, trip_id, batch_id, rider_ref, rider_id, entry_station, exit_station, entered_at, exited_at, "
                "service_day, distance_m, rule_version_id, points, co2e_grams, status, credited_at")
# One insertion order for a given set of rows (exit time, then key), so concurrent deliveries of the same trips
# take the unique index's locks in the same order, and trip ids follow exit times. SQLite inserts this way; PostgreSQL
# claims the keys in that order (CLAIM_KEYS).
INSERT_TRIPS = (
    f"INSERT INTO trips ({TRIP_COLUMNS}) "
    "SELECT a.source, a.trip_id, :batch_id, a.rider_ref, a.rider_id, a.entry_station, a.exit_station, a.entered_at, "
    "a.exited_at, a.service_day, a.distance_m, a.rule_version_id, a.points, a.co2e_grams, a.status, "
    "CASE WHEN a.rider_id IS NULL THEN NULL ELSE :now END FROM {source} a WHERE 1 = 1 "
    "ORDER BY a.exited_at, a.source, a.trip_id ON CONFLICT (source, trip_id) DO NOTHING")
# PostgreSQL: trips is partitioned by month, so (source, trip_id) is unique in trip_keys, not in trips. Each allocated
# trip claims its key first, taking its id from the trips' sequence (in exit-time order); only the trips whose claim
# went in are inserted, so a resend is skipped whichever month its exit falls in.
CLAIM_KEYS = (
    "INSERT INTO trip_keys (source, trip_id, trip_pk, service_day) "
    "SELECT o.source, o.trip_id, nextval('trips_id_seq'), o.service_day FROM (SELECT a.source, a.trip_id, "
    "a.service_day FROM allocated a ORDER BY a.exited_at, a.source, a.trip_id) o "
    "ON CONFLICT (source, trip_id) DO NOTHING RETURNING source, trip_id, trip_pk")
INSERT_CLAIMED_TRIPS = (
    f"INSERT INTO trips (id, {TRIP_COLUMNS}) "
    "SELECT k.trip_pk, a.source, a.trip_id, :batch_id, a.rider_ref, a.rider_id, a.entry_station, a.exit_station, "
    "a.entered_at, a.exited_at, a.service_day, a.distance_m, a.rule_version_id, a.points, a.co2e_grams, a.status, "
    "CASE WHEN a.rider_id IS NULL THEN NULL ELSE :now END "
    "FROM allocated a JOIN claim k ON k.source = a.source AND k.trip_id = a.trip_id")
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


def _credit_staged(batch_id: int, now: datetime) -> tuple[int, dict[str, int]]:
    """Insert the staged trips, crediting the linked ones; return (trips inserted, counts by status)."""
    session = db.session
    # Links never change once made, so each staged trip's rider can be looked up before the locks: one probe of
    # the (source, ref) index per row (a scalar subquery is never turned into a join to misplan).
    session.execute(text(
        "UPDATE trip_stage SET rider_id = (SELECT l.rider_id FROM rider_links l "
        "WHERE l.source = trip_stage.source AND l.ref = trip_stage.rider_ref)"))
    lock_riders("SELECT rider_id FROM trip_stage")
    # After the locks, trips of these riders stored by other batches are visible, so dropping the resends here is
    # exact for credited trips; a held one racing in from elsewhere is caught by ON CONFLICT below.
    session.execute(text(
        "DELETE FROM trip_stage WHERE EXISTS (SELECT 1 FROM trip_keys k WHERE k.source = trip_stage.source "
        "AND k.trip_id = trip_stage.trip_id)"))
    params = {"batch_id": batch_id, "now": sql_param(now)}
    if is_postgres():
        # One statement: allocate, insert the trips, move the balances and post the ledger entries. Every part of
        # it reads the snapshot the statement started with, so `led` sees each (locked) rider's balance before
        # `bal` moves it, and counts balance_after on from there. `led` joins the riders by their primary key: a
        # join of the two CTEs' outputs, whose sizes the planner cannot know, became a nested loop of 10,000 x
        # 10,000 rows (13 s a batch).
        counts = dict(session.execute(text(_dialect_sql(
            "WITH " + STAGED_CAND + ALLOCATE_CTE + ", "
            "claim AS (" + CLAIM_KEYS + "), "
            "ins AS (" + INSERT_CLAIMED_TRIPS +
            " RETURNING id, rider_id, points, exited_at, service_day, rule_version_id, source, trip_id, status, "
            "distance_m, co2e_grams), "
            "bal AS (" + BALANCE_UPDATE.format(source="ins") + "), "
            f"led AS (INSERT INTO ledger_entries ({LEDGER_COLUMNS}) " + LEDGER_SELECT.format(source="ins") + "), "
            "days AS (" + add_trips_sql("ins") + ") "
            "SELECT status, COUNT(*) FROM ins GROUP BY status")), params).all())
        return sum(counts.values()), counts
    session.execute(text(ALLOC_DDL))
    session.execute(text("DELETE FROM trip_alloc"))
    session.execute(text(_dialect_sql(
        "WITH " + STAGED_CAND + ALLOCATE_CTE +
        "INSERT INTO trip_alloc (line_no, source, trip_id, rider_id, points, co2e_grams, status) "
        "SELECT line_no, source, trip_id, rider_id, points, co2e_grams, status FROM allocated")))
    alloc = ("(SELECT s.*, a.rider_id, a.points, a.co2e_grams, a.status FROM trip_alloc a "
             "JOIN trip_stage s ON s.line_no = a.line_no)")
    inserted = session.execute(text(INSERT_TRIPS.format(source=alloc)), params).rowcount
    session.execute(text(RECORD_KEYS), params)
    post_trip_credits("SELECT t.id FROM trip_alloc a JOIN trips t ON t.source = a.source AND t.trip_id = a.trip_id "
                      "WHERE a.rider_id IS NOT NULL AND a.points > 0", now=now)
    add_trips("SELECT t.id FROM trip_alloc a JOIN trips t ON t.source = a.source AND t.trip_id = a.trip_id "
              "WHERE a.rider_id IS NOT NULL")
    counts = dict(session.execute(text("SELECT status, COUNT(*) FROM trip_alloc GROUP BY status")).all())
    counts["held"] = inserted - counts.get("credited", 0) - counts.get("capped", 0)
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
            duplicates=TripBatch.duplicates + result.duplicates, rejected=TripBatch.rejected + len(result.rejected)))


def ingest_rows(*, batch: TripBatch, rows: Sequence[object], first_line: int = 1, now: datetime | None = None,
                network: Network | None = None) -> BatchResult:
    """Check, stage and credit one slice of a batch; add its counts to the batch. Flushes, never commits."""
    now = now or utcnow()
    staged, rejected, repeats = check_rows(rows, first_line=first_line, network=network or get_network(),
                                           rules=load_rulebook(), now=now)
    record_rejections(batch.id, rejected)
    result = BatchResult(duplicates=repeats, rejected=rejected)
    if staged:
        _stage(staged)
        inserted, counts = _credit_staged(batch.id, now)
        result.credited = counts.get("credited", 0)
        result.capped = counts.get("capped", 0)
        result.held = inserted - result.credited - result.capped
        result.duplicates += len(staged) - inserted
    add_to_batch(batch.id, rows=len(rows), result=result)
    return result
