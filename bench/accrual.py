"""Accrual benchmark: synthetic trips on the real network through the partner feed's own code, into PostgreSQL.

    python bench/accrual.py [--trips 1000000] [--riders 100000] [--batch 10000] [--seed 42]
                            [--database-url URL] [--keep] [--analyze-every CALLS] [--mixed]

Setup (not timed): a fresh database `mp_bench_<pid>` migrated like the tests do, riders and their fare-card links
created set-wise, a partner, and every trip row built in memory as the API has it after decoding the JSON body:
commutes over the last 20 days between stations open on the day, at plausible speeds; ~2% on cards nobody linked
(held), 0.1% refused on purpose, 0.1% sent again later (duplicates), and a few riders over the daily cap.

Part A (timed): the rows go through `receive_trips` (what `POST /api/v1/trips` calls) in calls of `--batch`
rows, each committed like a request. Part B (timed, same run): a raw `COPY` of the same rows into a bare table.
Prints trips/s, the time split by step, the ratio of A to B against the targets, and checks the result with SQL.

With --mixed, the same run then does it all again on a second fresh database with green modes: of the trips, 70%
metro (as above), 15% bus (half with distance_m, half on the line's average), 10% shared bike and 5% walking days,
and 1% of the linked metro rides reported a second time by the city app (same ride, another source and trip id:
duplicates); it prints both rates and the mixed one's ratio to the metro-only one (target >= 0.8). Riders who ride
back and forth more than 3 times a day have those trips held for review, as the feed does by default.
The split comes from timers around the ingestion functions and SQLAlchemy cursor events; nothing is changed.
Results depend on the server: autovacuum (statistics on trips), shared_buffers and max_wal_size matter.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import itemgetter

import psycopg
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import event, text
from werkzeug.security import generate_password_hash

from metropoints.accrual import ingest
from metropoints.accrual.buslines import set_bus_line
from metropoints.accrual.ingest import ALL_FIELDS
from metropoints.accrual.models import Partner, TripMode
from metropoints.accrual.network import Network, get_network, sync_stations
from metropoints.accrual.operations import create_partner, receive_trips
from metropoints.accrual.rules import load_rulebook
from metropoints.app import create_app
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import SERVICE_OFFSET, utcnow

ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://127.0.0.1:5432/test")
TARGET_TRIPS_PER_S = 20_000
TARGET_RATIO = 10.0  # accrual within 10x of a raw COPY of the same rows (the first target was 5x)

SOURCE = "afc"
DAYS = 20  # trips fall on the service days 1..DAYS ago
HELD_SHARE = 0.02  # share of trips on cards nobody has linked
BAD_SHARE = 0.001  # rows refused on purpose
DUP_SHARE = 0.001  # rows sent a second time, later
HEAVY_SHARE = 0.04  # riders who pack long trips into a few days, over the daily cap
COMMUTE_M = (2_000, 30_000)
LONG_M = (16_000, 30_000)
MAX_TRIPS_PER_RIDER = 100  # 5 legs a day at most over DAYS days
PROGRESS_EVERY = 100_000
RAW_TABLE = "bench_raw_trips"
TARGET_MIXED_RATIO = 0.8
SECOND_SOURCE = "app"  # the city app, reporting some metro rides the fare system reports too
MIXED_SHARES = {"metro": 0.70, "bus": 0.15, "bike": 0.10, "walk": 0.05}
CROSS_SOURCE_SHARE = 0.01  # of the linked metro rides
BUS_LINES = [(f"{n}", 3000 + 100 * n) for n in range(101, 121)]  # line code, average trip metres
BAD_STATION = "9901"


# --------------------------------------------------------------------------------------------------------------
# Trip generation (not timed)
# --------------------------------------------------------------------------------------------------------------

@dataclass
class Workload:
    """The rows to feed, in feed order, and what the ingestion should make of them."""

    rows: list[dict]
    expected: Counter = field(default_factory=Counter)  # credited, capped, held, duplicates, rejected
    expected_points: int = 0
    rejected_reasons: Counter = field(default_factory=Counter)
    linked_cards: int = 0
    unlinked_cards: int = 0
    heavy_cards: int = 0
    modes: Counter = field(default_factory=Counter)  # trips stored per mode (mixed workload only)


def _pick_pair(rng: random.Random, stations: list[str], network: Network, on: date,
               bounds: tuple[int, int]) -> tuple[str, str]:
    """Two distinct stations open on `on` whose track distance falls within `bounds` (metres)."""
    low, high = bounds
    while True:
        a, b = rng.sample(stations, 2)
        metres = network.distance_m(a, b, on)
        if metres is not None and low <= metres <= high:
            return a, b


def _pick_days(rng: random.Random, days: list[date], count: int) -> list[date]:
    """`count` distinct service days, weekdays three times as likely as weekends (weighted, no replacement)."""
    keyed = sorted(days, key=lambda d: rng.random() ** (1 / (3 if d.weekday() < 5 else 1)), reverse=True)
    return sorted(keyed[:count])


def _legs(rng: random.Random, network: Network, day: date, a: str, b: str, count: int,
          chained: bool) -> list[tuple[datetime, datetime, str, str, int]]:
    """A day's trips for one card: a commute (morning out, evening back) or a chain of back-and-forth legs.

    Duration is 2 minutes a km plus 5 to 9 minutes, so no trip is near the 80 km/h limit.
    """
    midnight = datetime(day.year, day.month, day.day, tzinfo=SERVICE_OFFSET)
    legs = []
    if chained:
        enter = midnight + timedelta(seconds=rng.randint(7 * 3600, 8 * 3600))
    for leg in range(count):
        entry, exit_ = (a, b) if leg % 2 == 0 else (b, a)
        metres = network.distance_m(entry, exit_, day)
        if not chained:
            start = 6 * 3600 + 1800 if leg == 0 else 17 * 3600
            enter = midnight + timedelta(seconds=start + rng.randint(0, 150 * 60))
        leave = enter + timedelta(seconds=300 + metres * 120 // 1000 + rng.randint(0, 240))
        legs.append((enter, leave, entry, exit_, metres))
        if chained:
            enter = leave + timedelta(seconds=rng.randint(20 * 60, 90 * 60))
    return legs


def build_workload(*, trips: int, riders: int, seed: int, network: Network, now: datetime,
                   points_per_km_milli: int, daily_cap: int, mixed: dict | None = None,
                   review_pair: int = 3, review_day: int = 8) -> Workload:
    """Every trip row of the run, in feed order (by exit time), with the counts the ingestion should report.

    `mixed`, when given, holds each green mode's rule numbers: then only 70% of the trips are metro rides and the rest
    are bus, bike and walking rows (MIXED_SHARES), with 1% of the linked metro rides sent again by SECOND_SOURCE.
    """
    rng = random.Random(seed)
    total = trips
    if mixed is not None:
        trips = round(total * MIXED_SHARES["metro"])
    today = now.astimezone(SERVICE_OFFSET).date()
    days = [today - timedelta(days=n) for n in range(DAYS, 0, -1)]
    stations = sorted(s for s in network.stations if network.is_open(s, days[0]))
    if BAD_STATION in network.stations:
        raise SystemExit(f"{BAD_STATION} is a real station; pick another unknown id")
    n_bad, n_dup = round(trips * BAD_SHARE), round(trips * DUP_SHARE)
    n_good = trips - n_bad - n_dup
    unlinked = max(1, round(riders * HELD_SHARE / (1 - HELD_SHARE)))
    cards = riders + unlinked
    base, extra = divmod(n_good, cards)
    work = Workload(rows=[], linked_cards=riders, unlinked_cards=unlinked)

    # (exit epoch seconds, kind, card, service day, raw points, row, mode); kind: 0 good, 1 duplicate, 2 bad,
    # 3 the same ride from the second source
    records: list[tuple] = []
    seq = 0
    for card in range(1, cards + 1):
        k = base + (1 if card <= extra else 0)
        if k == 0:
            continue
        heavy = k >= 5 and rng.random() < HEAVY_SHARE
        work.heavy_cards += heavy
        a, b = _pick_pair(rng, stations, network, days[0], LONG_M if heavy else COMMUTE_M)
        per_day = 5 if heavy else max(2, math.ceil(k / DAYS))
        chosen = _pick_days(rng, days, math.ceil(k / per_day))
        ref = f"card-{card}"
        left = k
        for day in chosen:
            count = min(per_day, left)
            left -= count
            for enter, leave, entry, exit_, metres in _legs(rng, network, day, a, b, count, chained=per_day > 2):
                seq += 1
                row = {"trip_id": f"t{seq:09d}", "source": SOURCE, "rider_ref": ref, "entry_station": entry,
                       "exit_station": exit_, "entered_at": enter.isoformat(), "exited_at": leave.isoformat()}
                records.append((leave.timestamp(), 0, card, day, metres * points_per_km_milli // 1_000_000, row,
                                "metro", (min(entry, exit_), max(entry, exit_))))
    latest = max(r[0] for r in records)
    if latest > now.timestamp() or min(r[0] for r in records) < (now - timedelta(days=29)).timestamp():
        raise SystemExit("generated an exit outside the last 29 days")

    if mixed is not None:
        _add_green_modes(rng, records, total - trips, cards, days, mixed)
    for _ in range(n_dup):  # the partner sends a trip again, 1 to 36 hours later
        key, _kind, card, day, raw, row, mode, pair = rng.choice(records)
        records.append((key + rng.randint(3600, 36 * 3600), 1, card, day, raw, dict(row), mode, pair))
    if mixed is not None:  # the city app reports some linked metro rides too, a minute later by its clock
        metro = [r for r in records if r[1] == 0 and r[6] == "metro" and r[2] <= riders]
        for n, (key, _kind, card, day, _raw, row, mode, pair) in enumerate(
                rng.sample(metro, round(len(metro) * CROSS_SOURCE_SHARE))):
            moved = {k: (datetime.fromisoformat(row[k]) + timedelta(minutes=1)).isoformat()
                     for k in ("entered_at", "exited_at")}
            records.append((key + rng.randint(60, 6 * 3600), 3, card, day, 0,
                            dict(row, **moved, trip_id=f"app{n:08d}", source=SECOND_SOURCE), mode, pair))
    bad_kinds = (("unknown_station", 6), ("bad_times", 2), ("same_station", 2))
    metro_rows = [r for r in records if r[6] == "metro"]
    for n in range(n_bad):
        key, *_rest, template, _mode, _pair = metro_rows[rng.randrange(len(metro_rows))]
        row = dict(template, trip_id=f"bad{n:07d}")
        reason = rng.choices([k for k, _ in bad_kinds], [w for _, w in bad_kinds])[0]
        if reason == "unknown_station":
            row["exit_station"] = BAD_STATION
        elif reason == "bad_times":
            row["entered_at"], row["exited_at"] = row["exited_at"], row["entered_at"]
        else:
            row["exit_station"] = row["entry_station"]
        work.rejected_reasons[reason] += 1
        records.append((key, 2, 0, None, 0, row, "metro", None))
    records.sort(key=itemgetter(0))

    # What the ingestion should report: trips that look farmed wait for review (a metro pair ridden more than
    # `review_pair` times a day, more than `review_day` trips a day), the rest is allocated under the caps (each
    # mode's own, then the daily one across modes) in exit order per rider and service day.
    used: dict[tuple[int, date], int] = defaultdict(int)
    used_mode: dict[tuple[int, date, str], int] = defaultdict(int)
    day_trips: dict[tuple[int, date], int] = defaultdict(int)
    pair_trips: dict[tuple[int, date, tuple], int] = defaultdict(int)
    caps = {mode: numbers["mode_cap"] for mode, numbers in (mixed or {}).items()}
    for _key, kind, card, day, raw, _row, mode, pair in records:
        if mixed is not None and kind in (0, 3):
            work.modes[mode] += 1
        if kind in (1, 3):
            work.expected["duplicates"] += 1
            work.expected["stored_duplicates"] += kind == 3
        elif kind == 2:
            work.expected["rejected"] += 1
        elif card > riders:
            work.expected["held"] += 1
        else:
            review = (mode != "walk" and day_trips[card, day] >= review_day) or (
                mode == "metro" and pair_trips[card, day, pair] >= review_pair)
            if mode != "walk":
                day_trips[card, day] += 1
            if mode == "metro":
                pair_trips[card, day, pair] += 1
            if review:
                work.expected["review"] += 1
                continue
            mode_cap = caps.get(mode)
            allowed = raw if mode_cap is None else max(0, min(raw, mode_cap - used_mode[card, day, mode]))
            used_mode[card, day, mode] += raw
            room = daily_cap - used[card, day]
            if allowed < raw or raw > room:
                work.expected["capped"] += 1
                points = max(0, min(allowed, room))
            else:
                work.expected["credited"] += 1
                points = raw
            used[card, day] += points
            work.expected_points += points
    work.rows = [r[5] for r in records]
    return work


def _add_green_modes(rng: random.Random, records: list[tuple], count: int, cards: int, days: list[date],
                     rules: dict) -> None:
    """Bus, bike and walking rows, `count` in all in MIXED_SHARES' proportions, on random cards and days; at most
    one of each mode per card and day, late in the evening (after the last metro leg, so nothing overlaps)."""
    share = sum(MIXED_SHARES[m] for m in ("bus", "bike", "walk"))
    n_bus = round(count * MIXED_SHARES["bus"] / share)
    n_bike = round(count * MIXED_SHARES["bike"] / share)
    n_walk = count - n_bus - n_bike
    for mode, n in (("bus", n_bus), ("bike", n_bike), ("walk", n_walk)):
        numbers = rules[mode]
        picked: set[tuple[int, int]] = set()
        while len(picked) < n:
            picked.add((rng.randint(1, cards), rng.randrange(len(days))))
        for seq, (card, d) in enumerate(sorted(picked)):
            day = days[d]
            midnight = datetime(day.year, day.month, day.day, tzinfo=SERVICE_OFFSET)
            base = {"trip_id": f"{mode[:2]}{seq:08d}", "source": SOURCE, "rider_ref": f"card-{card}", "mode": mode}
            if mode == "bus":
                line, average = rng.choice(BUS_LINES)
                board = midnight + timedelta(hours=21, minutes=30, seconds=rng.randint(0, 600))
                row = dict(base, line=line, boarded_at=board.isoformat())
                if rng.random() < 0.5:
                    metres = rng.randint(2000, 8000)
                    end = board + timedelta(minutes=30)
                    row.update(alighted_at=end.isoformat(), distance_m=metres)
                else:
                    metres, end = average, board
                raw = metres * numbers["points_per_km_milli"] // 1_000_000
            elif mode == "bike":
                metres = rng.randint(1000, 5000)
                end = midnight + timedelta(hours=23, minutes=10, seconds=-rng.randint(0, 600))
                row = dict(base, started_at=(end - timedelta(minutes=20)).isoformat(), ended_at=end.isoformat(),
                           distance_m=metres)
                raw = metres * numbers["points_per_km_milli"] // 1_000_000
            else:
                steps = rng.randint(4000, 16000)  # at least a point: what the cap leaves is then exact
                end = midnight + timedelta(days=1, seconds=-1)
                row = dict(base, day=day.isoformat(), steps=steps)
                raw = max(0, steps - numbers["steps_threshold"]) * numbers["points_per_1000_steps_milli"] // 1_000_000
            records.append((end.timestamp(), 0, card, day, raw, row, mode, None))


# --------------------------------------------------------------------------------------------------------------
# Database setup (not timed)
# --------------------------------------------------------------------------------------------------------------

def plain_url(url: str) -> str:
    """A libpq URL (psycopg) from a SQLAlchemy-style one."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


def make_app(database_url: str, max_per_call: int) -> Flask:
    """The platform on the bench database; jobs inline, no Redis."""
    return create_app({
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "bench-secret",
        "QUEUE_PREFIX": f"mp-bench-{os.getpid()}",
        "RATELIMIT_STORAGE_URI": "memory://",
        "TRIPS_MAX_PER_CALL": max(10_000, max_per_call),
    })


def migrate_and_seed(riders: int, unlinked_note: int, mixed: bool = False) -> tuple[int, int, int]:
    """Migrate, sync stations, create riders with one linked card each and a partner; for the mixed workload, the
    city app's links of the same riders and the bus lines.

    Returns (partner id, points per km in thousandths, daily cap) of the rule version in force.
    """
    upgrade()
    sync_stations()
    commit_unit_of_work()
    existing = db.session.execute(text("SELECT (SELECT count(*) FROM riders), (SELECT count(*) FROM trips)")).one()
    if any(existing):
        raise SystemExit(f"the database already holds {existing[0]} riders and {existing[1]} trips; "
                         "give an empty one (or none, for a fresh mp_bench_* database)")
    password_hash = generate_password_hash("bench-password")  # one hash, shared: login is not benchmarked
    db.session.execute(text(
        "WITH new AS (INSERT INTO riders (phone, password_hash, display_name, points_balance, created_at) "
        "SELECT '19' || lpad(g::text, 9, '0'), :hash, 'bench rider ' || g, 0, now() "
        "FROM generate_series(1, :n) g RETURNING id, phone) "
        "INSERT INTO rider_links (rider_id, source, ref, created_at) "
        "SELECT id, :source, 'card-' || CAST(substr(phone, 3) AS integer), now() FROM new"),
        {"hash": password_hash, "n": riders, "source": SOURCE})
    if mixed:
        db.session.execute(text(
            "INSERT INTO rider_links (rider_id, source, ref, created_at) "
            "SELECT rider_id, :second, ref, now() FROM rider_links WHERE source = :source"),
            {"second": SECOND_SOURCE, "source": SOURCE})
        for code, metres in BUS_LINES:
            set_bus_line(code=code, name=f"{code}路", avg_trip_m=metres, actor=None, actor_label="bench")
    partner, _token = create_partner(name="bench-afc", actor_label="bench")
    commit_unit_of_work()
    db.session.execute(text("ANALYZE riders"))
    db.session.execute(text("ANALYZE rider_links"))
    commit_unit_of_work()
    rules = load_rulebook().version_for(utcnow())
    print(f"setup: {riders:,} riders each with a linked card ({unlinked_note:,} more cards unlinked), "
          f"partner id {partner.id}, rules v{rules.id}: {rules.points_per_km_milli / 1000:g} pt/km, "
          f"cap {rules.daily_cap}/day", flush=True)
    return partner.id, rules.points_per_km_milli, rules.daily_cap


# --------------------------------------------------------------------------------------------------------------
# Instrumentation: time spent per ingestion step and per SQL statement kind (measures, changes nothing)
# --------------------------------------------------------------------------------------------------------------

SQL_EXACT = {"DELETE FROM trip_stage": "stage: clear temp tables", "DELETE FROM trip_alloc": "stage: clear temp tables"}
SQL_KINDS = (
    ("WITH x(i) AS MATERIALIZED (UPDATE trip_stage", "find + lock riders (link probes, FOR UPDATE)"),
    ("WITH x(i) AS MATERIALIZED", "lock riders (SELECT ... FOR UPDATE)"),
    ("UPDATE trip_stage SET rider_id", "find riders (link probes)"),
    ("DELETE FROM trip_stage WHERE", "drop resends (trip probes)"),
    ("WITH claim", "credit: allocate+trips+balances+ledger (1 stmt)"),
    ("WITH cand", "credit: allocate+trips+balances+ledger (1 stmt)"),
    ("INSERT INTO trips", "insert trips"),
    ("INSERT INTO ledger_entries", "post ledger entries"),
    ("UPDATE riders", "update balances"),
    ("SELECT status, COUNT", "count statuses"),
    ("ANALYZE trip_stage", "stage: ANALYZE"),
    ("CREATE TEMPORARY", "stage: CREATE IF NOT EXISTS"),
    ("INSERT INTO trip_rejections", "record rejections"),
    ("INSERT INTO trip_batches", "batch row"),
    ("UPDATE trip_batches", "batch row"),
    ("SELECT rule_versions", "load rulebook"),
    ("SELECT partners", "reload partner"),
)
STAGE_SQL = ("stage: ANALYZE", "stage: CREATE IF NOT EXISTS", "stage: clear temp tables")


class Timings:
    """Seconds per ingestion function (wrapped in place for the run) and per kind of SQL statement."""

    def __init__(self) -> None:
        self.functions: Counter = Counter()
        self.sql_within: Counter = Counter()  # SQL seconds spent inside each wrapped function
        self.sql: Counter = Counter()
        self.paused = False
        self._kinds: dict[str, str] = {}
        self._started: list[float] = []
        self._inside: list[str] = []
        self._restore: list[tuple[object, str, Callable]] = []

    def kind(self, statement: str) -> str:
        """The label of a statement, by its opening words."""
        label = self._kinds.get(statement)
        if label is None:
            head = " ".join(statement.split())[:80]
            label = SQL_EXACT.get(head) or next(
                (name for prefix, name in SQL_KINDS if head.startswith(prefix)), "other: " + head[:41])
            self._kinds[statement] = label
        return label

    def before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self._started.append(time.perf_counter())

    def after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        seconds = time.perf_counter() - self._started.pop()
        if self.paused:
            return
        label = self.kind(statement)
        self.sql[label] += seconds
        if self._inside:
            self.sql_within[self._inside[-1]] += seconds

    def wrap(self, module: object, name: str) -> None:
        """Time every call of module.name (looked up at call time by its callers)."""
        original = getattr(module, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            self._inside.append(name)
            try:
                return original(*args, **kwargs)
            finally:
                self._inside.pop()
                self.functions[name] += time.perf_counter() - started

        setattr(module, name, timed)
        self._restore.append((module, name, original))

    def start(self, engine) -> None:
        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)
        for name in ("check_rows", "record_rejections", "_stage", "_credit_staged", "add_to_batch"):
            self.wrap(ingest, name)

    def stop(self, engine) -> None:
        event.remove(engine, "before_cursor_execute", self.before)
        event.remove(engine, "after_cursor_execute", self.after)
        for module, name, original in reversed(self._restore):
            setattr(module, name, original)
        self._restore.clear()


# --------------------------------------------------------------------------------------------------------------
# Part A: the feed; part B: raw COPY
# --------------------------------------------------------------------------------------------------------------

@dataclass
class FeedRun:
    seconds: float
    commit_seconds: float
    analyze_seconds: float
    counts: Counter
    reasons: Counter
    timings: Timings


def run_feed(partner_id: int, rows: list[dict], batch: int, analyze_every: int = 0) -> FeedRun:
    """Feed the rows through receive_trips, one committed call per `batch` rows, as the API does.

    With `analyze_every`, trips and ledger_entries are analyzed after every that many calls, as autovacuum would
    do beside a live feed; that time is left out of the feed's.
    """
    partner = db.session.get(Partner, partner_id)
    timings = Timings()
    counts: Counter = Counter()
    reasons: Counter = Counter()
    commit_seconds = analyze_seconds = 0.0
    total = len(rows)
    next_report = PROGRESS_EVERY
    timings.start(db.engine)
    started = last_at = time.perf_counter()
    last_done, last_analyze = 0, 0.0
    try:
        for first in range(0, total, batch):
            result = receive_trips(partner=partner, payload={"trips": rows[first:first + batch]})
            committing = time.perf_counter()
            commit_unit_of_work()
            commit_seconds += time.perf_counter() - committing
            counts.update(credited=result.credited, capped=result.capped, held=result.held, review=result.review,
                          duplicates=result.duplicates, rejected=len(result.rejected))
            reasons.update(r.reason for r in result.rejected)
            if analyze_every and (first // batch + 1) % analyze_every == 0:
                analyzing = time.perf_counter()
                timings.paused = True
                db.session.execute(text("ANALYZE trips"))
                db.session.execute(text("ANALYZE ledger_entries"))
                commit_unit_of_work()
                timings.paused = False
                analyze_seconds += time.perf_counter() - analyzing
            done = min(first + batch, total)
            if done >= next_report or done == total:
                now = time.perf_counter()
                elapsed = now - started - analyze_seconds
                recent = (done - last_done) / (now - last_at - (analyze_seconds - last_analyze))
                print(f"  A: {done:>10,} trips  {elapsed:7.1f} s  {done / elapsed:9,.0f} trips/s overall, "
                      f"{recent:9,.0f} trips/s since the last line", flush=True)
                next_report = (done // PROGRESS_EVERY + 1) * PROGRESS_EVERY
                last_done, last_at, last_analyze = done, now, analyze_seconds
        seconds = time.perf_counter() - started - analyze_seconds
    finally:
        timings.stop(db.engine)
    return FeedRun(seconds, commit_seconds, analyze_seconds, counts, reasons, timings)


def run_raw_copy(url: str, rows: list[dict]) -> float:
    """COPY the same rows and columns into a bare logged table, no indexes; seconds from first write to commit."""
    columns = ", ".join(ALL_FIELDS)
    with psycopg.connect(url) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        conn.execute(f"CREATE TABLE {RAW_TABLE} (trip_id varchar(64), source varchar(32), rider_ref varchar(64), "
                     "entry_station varchar(8), exit_station varchar(8), entered_at timestamptz, "
                     "exited_at timestamptz, mode varchar(8), line varchar(16), boarded_at timestamptz, "
                     "alighted_at timestamptz, distance_m integer, started_at timestamptz, ended_at timestamptz, "
                     "day date, steps integer)")
        conn.commit()
        with conn.cursor() as cursor:
            started = time.perf_counter()
            with cursor.copy(f"COPY {RAW_TABLE} ({columns}) FROM STDIN") as copy:
                for n, row in enumerate(rows, start=1):
                    copy.write_row([row.get(name) for name in ALL_FIELDS])
                    if n % PROGRESS_EVERY == 0:
                        print(f"  B: {n:>10,} rows   {time.perf_counter() - started:7.1f} s", flush=True)
            conn.commit()
            seconds = time.perf_counter() - started
            copied = cursor.execute(f"SELECT count(*) FROM {RAW_TABLE}").fetchone()[0]
        if copied != len(rows):
            raise SystemExit(f"raw COPY stored {copied} rows of {len(rows)}")
    return seconds


# --------------------------------------------------------------------------------------------------------------
# Checks after the run
# --------------------------------------------------------------------------------------------------------------

def verify(work: Workload, feed: FeedRun, daily_cap: int) -> bool:
    """Check with SQL that balances equal ledger sums, no rider-day is over the cap, and the counts add up."""
    def one(sql: str):
        return db.session.execute(text(sql)).scalar()

    checks = [
        ("riders whose balance differs from the sum of their ledger entries", one(
            "SELECT count(*) FROM riders r LEFT JOIN (SELECT rider_id, sum(points) AS s FROM ledger_entries "
            "GROUP BY rider_id) l ON l.rider_id = r.id WHERE r.points_balance <> COALESCE(l.s, 0)"), 0),
        (f"rider service days over {daily_cap} points (trips)", one(
            "SELECT count(*) FROM (SELECT 1 FROM trips t JOIN rule_versions v ON v.id = t.rule_version_id "
            "WHERE t.rider_id IS NOT NULL GROUP BY t.rider_id, t.service_day "
            "HAVING sum(t.points) > min(v.daily_cap)) x"), 0),
        (f"rider service days over {daily_cap} points (ledger, by earned_on)", one(
            f"SELECT count(*) FROM (SELECT 1 FROM ledger_entries WHERE kind = 'trip' "
            f"GROUP BY rider_id, earned_on HAVING sum(points) > {int(daily_cap)}) x"), 0),
        ("trip ledger entries without a trip of positive points, or the reverse", one(
            "SELECT (SELECT count(*) FROM trips WHERE points > 0) - (SELECT count(*) FROM ledger_entries "
            "WHERE kind = 'trip')"), 0),
        ("total points on balances", one("SELECT COALESCE(sum(points_balance), 0) FROM riders"),
         work.expected_points),
        ("trips stored", one("SELECT count(*) FROM trips"),
         sum(work.expected[k] for k in ("credited", "capped", "held", "review", "stored_duplicates"))),
        ("rejections stored", one("SELECT count(*) FROM trip_rejections"), work.expected["rejected"]),
        ("rows counted on the batches", one("SELECT COALESCE(sum(rows_done), 0) FROM trip_batches"),
         len(work.rows)),
    ]
    for status, expected in (("credited", "credited"), ("capped", "capped"), ("held", "held"), ("review", "review"),
                             ("duplicate", "stored_duplicates")):
        checks.append((f"trips with status {status}",
                       one(f"SELECT count(*) FROM trips WHERE status = '{status}'"), work.expected[expected]))
    if work.modes:
        got = dict(db.session.execute(text("SELECT mode, count(*) FROM trips GROUP BY mode")).tuples().all())
        checks.append(("trips stored per mode", got, dict(work.modes)))
    for name in ("credited", "capped", "held", "review", "duplicates", "rejected"):
        checks.append((f"replies: {name}", feed.counts[name], work.expected[name]))
    checks.append(("replies: rejection reasons", dict(feed.reasons), dict(work.rejected_reasons)))
    ok = True
    print("\nchecks (SQL after the run):", flush=True)
    for label, got, want in checks:
        good = got == want
        ok &= good
        print(f"  [{'ok' if good else 'FAIL'}] {label}: {got}" + ("" if good else f" (expected {want})"))
    return ok


# --------------------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------------------

def print_split(feed: FeedRun, rows: int) -> None:
    """Where part A's time went."""
    fn, sql, within = feed.timings.functions, feed.timings.sql, feed.timings.sql_within
    lines = [("check_rows (Python row checks)", fn["check_rows"]),
             ("stage: COPY into trip_stage (write_row)", fn["_stage"] - within["_stage"])]
    lines += [(k, sql[k]) for k in STAGE_SQL]
    credit_kinds = ("find riders (link probes)", "lock riders (SELECT ... FOR UPDATE)",
                    "find + lock riders (link probes, FOR UPDATE)", "drop resends (trip probes)",
                    "credit: allocate+trips+balances+ledger (1 stmt)")
    lines += [(k, sql[k]) for k in credit_kinds if k in sql]
    lines.append(("credit: Python/driver around the SQL", fn["_credit_staged"] - within["_credit_staged"]))
    shown = set(STAGE_SQL) | set(credit_kinds)
    for label in sorted(set(sql) - shown, key=lambda k: -sql[k]):
        lines.append((label, sql[label]))
    lines.append(("commit", feed.commit_seconds))
    accounted = sum(s for _, s in lines)
    lines.append(("rest (receive_trips glue, ORM, loop)", feed.seconds - accounted))
    print("\ntime split of part A (each step summed over all calls):")
    for label, seconds in lines:
        print(f"  {label:<48} {seconds:8.2f} s  {100 * seconds / feed.seconds:5.1f}%")
    check = fn["check_rows"]
    print(f"  {'= Python row checking':<48} {check:8.2f} s  {100 * check / feed.seconds:5.1f}%"
          f"   ({check / rows * 1e6:.1f} us/row)")
    print(f"  {'= everything else':<48} {feed.seconds - check:8.2f} s  "
          f"{100 * (feed.seconds - check) / feed.seconds:5.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=1_000_000)
    parser.add_argument("--riders", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per receive_trips call (API maximum 10,000)")
    parser.add_argument("--database-url", help="an existing, empty database (default: a fresh mp_bench_<pid>)")
    parser.add_argument("--keep", action="store_true", help="keep the fresh database (and the raw COPY table)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--analyze-every", type=int, default=0, metavar="CALLS",
                        help="ANALYZE trips and ledger_entries after every CALLS calls, as autovacuum would "
                             "(untimed; default: never, leave it to the server)")
    parser.add_argument("--mixed", action="store_true",
                        help="then the same on a second fresh database with green modes, and compare the rates")
    args = parser.parse_args(argv)
    if args.trips < 1 or args.riders < 1 or args.batch < 1:
        parser.error("--trips, --riders and --batch must be positive")
    if args.trips / args.riders > MAX_TRIPS_PER_RIDER:
        parser.error(f"at most {MAX_TRIPS_PER_RIDER} trips per rider")

    if args.mixed and args.database_url:
        parser.error("--mixed makes two fresh databases; leave out --database-url")
    ok, rate = run_workload(args, mixed=False)
    if not args.mixed:
        return 0 if ok else 1
    print("\n\n######## mixed modes: 70% metro, 15% bus, 10% bike, 5% walk, 1% of metro rides from a second source"
          " ########\n", flush=True)
    mixed_ok, mixed_rate = run_workload(args, mixed=True)
    ratio = mixed_rate / rate
    print("\n==== metro-only vs mixed modes (same run) ====")
    print(f"metro only:   {rate:10,.0f} trips/s   checks {'PASS' if ok else 'FAIL'}")
    print(f"mixed modes:  {mixed_rate:10,.0f} trips/s   checks {'PASS' if mixed_ok else 'FAIL'}")
    print(f"mixed / metro-only: {ratio:.2f}x   target >= {TARGET_MIXED_RATIO:g}x  "
          f"{'PASS' if ratio >= TARGET_MIXED_RATIO else 'MISS'}", flush=True)
    return 0 if ok and mixed_ok else 1


def run_workload(args: argparse.Namespace, *, mixed: bool) -> tuple[bool, float]:
    """One benchmark on its own database (fresh unless given): setup, part A, part B, checks, summary.
    Returns (checks passed, part A's trips/s)."""
    fresh = args.database_url is None
    if fresh:
        name = f"mp_bench_{os.getpid()}{'_mixed' if mixed else ''}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    else:
        url = plain_url(args.database_url)
    print(f"database: {url}{' (fresh)' if fresh else ''}; {args.trips:,} trips, {args.riders:,} riders, "
          f"calls of {args.batch:,}; seed {args.seed}", flush=True)
    app = make_app(url, args.batch)
    ok, rate = True, 0.0
    try:
        with app.app_context():
            with db.engine.connect() as conn:
                version = conn.execute(text("SELECT version()")).scalar().split(" on ")[0]
                autovacuum = conn.execute(text("SHOW autovacuum")).scalar()
                print(f"server: {version}, autovacuum {autovacuum}"
                      + (f"; ANALYZE every {args.analyze_every} calls" if args.analyze_every else ""), flush=True)
            unlinked = max(1, round(args.riders * HELD_SHARE / (1 - HELD_SHARE)))
            partner_id, ppk_milli, cap = migrate_and_seed(args.riders, unlinked, mixed=mixed)
            started = time.perf_counter()
            book = load_rulebook()
            modes = None
            if mixed:
                modes = {mode.value: {k: getattr(v, k) for k in (
                    "points_per_km_milli", "mode_cap", "steps_threshold", "points_per_1000_steps_milli")}
                    for mode in TripMode for v in (book.version_for(utcnow(), mode),)}
                commit_unit_of_work()
            work = build_workload(trips=args.trips, riders=args.riders, seed=args.seed, network=get_network(),
                                  now=utcnow(), points_per_km_milli=ppk_milli, daily_cap=cap, mixed=modes,
                                  review_pair=app.config["REVIEW_BACK_AND_FORTH"],
                                  review_day=app.config["REVIEW_TRIPS_PER_DAY"])
            e = work.expected
            print(f"generated {len(work.rows):,} rows in {time.perf_counter() - started:.1f} s: "
                  f"{work.linked_cards:,} linked + {work.unlinked_cards:,} unlinked cards, "
                  f"{work.heavy_cards:,} heavy riders; expected credited {e['credited']:,}, capped {e['capped']:,}, "
                  f"held {e['held']:,}, review {e['review']:,}, duplicates {e['duplicates']:,}, "
                  f"rejected {e['rejected']:,}" + (f"; per mode {dict(work.modes)}" if mixed else ""), flush=True)
            gc.collect()
            gc.freeze()  # the rows live all run; an API worker would hold one call's rows, not a million

            print(f"\npart A: receive_trips in calls of {args.batch:,}, one commit each", flush=True)
            feed = run_feed(partner_id, work.rows, args.batch, args.analyze_every)
            c = feed.counts
            print(f"part A: {len(work.rows):,} trips in {feed.seconds:.2f} s = {len(work.rows) / feed.seconds:,.0f} "
                  f"trips/s; credited {c['credited']:,}, capped {c['capped']:,}, held {c['held']:,}, "
                  f"review {c['review']:,}, duplicates {c['duplicates']:,}, rejected {c['rejected']:,}", flush=True)
            print_split(feed, len(work.rows))
            if feed.analyze_seconds:
                print(f"  (ANALYZE between calls, left out of the above: {feed.analyze_seconds:.2f} s)")

            print("\npart B: raw COPY of the same rows into a bare table (no indexes), one transaction", flush=True)
            copy_seconds = run_raw_copy(url, work.rows)
            print(f"part B: {len(work.rows):,} rows in {copy_seconds:.2f} s = "
                  f"{len(work.rows) / copy_seconds:,.0f} rows/s", flush=True)

            ok = verify(work, feed, cap)
            gc.unfreeze()

            rate = len(work.rows) / feed.seconds
            ratio = feed.seconds / copy_seconds
            rate_ok, ratio_ok = rate >= TARGET_TRIPS_PER_S, ratio <= TARGET_RATIO
            print(f"\n==== summary{' (mixed modes)' if mixed else ''} ====")
            print(f"accrual (part A): {feed.seconds:8.2f} s  {rate:10,.0f} trips/s   target >= {TARGET_TRIPS_PER_S:,}"
                  f"  {'PASS' if rate_ok else 'MISS'}")
            print(f"raw COPY (part B): {copy_seconds:7.2f} s  {len(work.rows) / copy_seconds:10,.0f} rows/s")
            print(f"ratio accrual / raw COPY: {ratio:.2f}x   target <= {TARGET_RATIO:g}x  "
                  f"{'PASS' if ratio_ok else 'MISS'}")
            print(f"checks: {'PASS' if ok else 'FAIL'}", flush=True)
            if not args.keep:
                with db.engine.begin() as conn:
                    conn.execute(text(f"DROP TABLE IF EXISTS {RAW_TABLE}"))
            db.session.remove()
            db.engine.dispose()
    finally:
        if fresh and not args.keep:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif fresh:
            print(f"kept database {url}")
    return ok, rate


if __name__ == "__main__":
    sys.exit(main())
