"""Monthly partitions of trips and ledger entries: writes on both sides of a month's end, a month the job made, the
invariants across months (a trip credited once, a coupon paid and refunded once, balance = sum of entries), the
triggers and CHECKs on each partition, and the year-end expiry and the settlement run reading only what they need."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from metropoints.accrual.jobs import create_partitions_job
from metropoints.accrual.ledger import expire_points, ledger_sum, post_entry
from metropoints.accrual.models import EntryKind, LedgerEntry, Trip, TripKey
from metropoints.accrual.partitions import create_partitions, partition_months
from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work
from metropoints.core.jobs import enqueue
from metropoints.core.timeutil import SERVICE_OFFSET, service_day, utcnow
from metropoints.settlement.operations import run_period
from tests.helpers import METRES, balance, post, trip

PARTITION = re.compile(r"\b((?:trips|ledger_entries)_\d{4}_\d{2})\b")


def month_start(day: date, months: int = 0) -> date:
    """The first day of the month `months` after `day`'s."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """That time of a service day in Asia/Shanghai, as UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SERVICE_OFFSET).astimezone(UTC)


def rows_by_partition(table: str) -> dict[str, int]:
    """How many rows of `table` each of its partitions holds."""
    return {name: count for name, count in db.session.execute(text(
        f"SELECT tableoid::regclass::text, COUNT(*) FROM {table} GROUP BY 1"))}


def test_trips_and_entries_on_both_sides_of_a_months_end_land_in_their_months(app, create_rider, create_partner):
    """A trip at 23:50 on the last day of a month and one at 00:10 on the 1st are stored, credited and posted in
    their own months' partitions; no write fails on the first day of a month."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    first = month_start(service_day(utcnow()), 1)
    last_day = first - timedelta(days=1)
    result = post(partner, [trip("late", exited_at=local(last_day, 23, 50)),
                            trip("early", exited_at=local(first, 0, 10))], now=local(first, 1))
    assert result.credited == 2
    before, after = f"{last_day:%Y_%m}", f"{first:%Y_%m}"
    assert rows_by_partition("trips") == {f"trips_{before}": 1, f"trips_{after}": 1}
    assert rows_by_partition("ledger_entries") == {f"ledger_entries_{before}": 1, f"ledger_entries_{after}": 1}
    assert balance(rider.id) == ledger_sum(rider.id) == 2 * (METRES // 1000)


def test_a_month_the_job_made_takes_writes(app, create_rider, create_partner):
    """Writes into a month past the partitions made so far fail loudly (no DEFAULT partition swallows them); once
    the daily job has made the months ahead, they go in. Running the job again makes nothing."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    far = month_start(service_day(utcnow()), app.config["PARTITION_MONTHS_AHEAD"] + 2)
    if f"{far:%Y_%m}" in partition_months("trips"):
        pytest.skip("an earlier run of the job in this database already made that month")
    with pytest.raises(DBAPIError, match="no partition"):
        post(partner, [trip("far-1", exited_at=local(far, 9))], now=local(far, 10))
    rollback_unit_of_work()
    app.config["PARTITION_MONTHS_AHEAD"] += 2
    try:
        enqueue(create_partitions_job, queue="scheduled")
        commit_unit_of_work()  # without Redis the job runs right after the commit
        assert f"{far:%Y_%m}" in partition_months("trips") and f"{far:%Y_%m}" in partition_months("ledger_entries")
        assert create_partitions() == 0
    finally:
        app.config["PARTITION_MONTHS_AHEAD"] -= 2
    assert post(partner, [trip("far-1", exited_at=local(far, 9))], now=local(far, 10)).credited == 1
    assert rows_by_partition("trips") == {f"trips_{far:%Y_%m}": 1}
    assert balance(rider.id) == ledger_sum(rider.id) == METRES // 1000


def test_a_resend_in_another_month_is_a_duplicate(app, create_rider, create_partner):
    """A (source, trip_id) is credited once even when the resend says the trip ended in the next month, for a
    credited trip and for a held one; trip_keys names the trip that was kept."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    first = month_start(service_day(utcnow()), 1)
    last_day = first - timedelta(days=1)
    now = local(first, 2)
    post(partner, [trip("t-1", exited_at=local(last_day, 23, 50)),
                   trip("h-1", ref="nobody", exited_at=local(last_day, 23, 55))], now=now)
    again = post(partner, [trip("t-1", exited_at=local(first, 0, 20)),
                           trip("h-1", ref="nobody", exited_at=local(first, 0, 25))], now=now)
    assert (again.credited, again.held, again.duplicates) == (0, 0, 2)
    assert db.session.scalar(select(func.count()).select_from(Trip)) == 2
    assert rows_by_partition("trips") == {f"trips_{last_day:%Y_%m}": 2}
    kept = db.session.scalar(select(TripKey).where(TripKey.trip_id == "t-1"))
    assert (kept.service_day, kept.trip_pk) == (last_day, db.session.scalar(
        select(Trip.id).where(Trip.trip_id == "t-1")))
    assert balance(rider.id) == ledger_sum(rider.id) == METRES // 1000


def test_a_coupon_is_paid_and_refunded_once_across_months(app, create_rider):
    """A second redemption or refund of a coupon is refused even when it is earned in another month, and so is a
    second expiry of a rider's year; the balance stays the sum of the entries."""
    rider = create_rider()
    this_month = service_day(utcnow()).replace(day=1)
    post_entry(rider_id=rider.id, points=100, kind=EntryKind.adjustment, reason="credit", earned_on=this_month)
    post_entry(rider_id=rider.id, points=-10, kind=EntryKind.redemption, ref="coupon:7", earned_on=this_month)
    post_entry(rider_id=rider.id, points=10, kind=EntryKind.refund, ref="coupon:7", earned_on=this_month)
    commit_unit_of_work()
    other_month = month_start(this_month, -1)
    for kind, points in ((EntryKind.redemption, -10), (EntryKind.refund, 10)):
        with pytest.raises(IntegrityError):
            post_entry(rider_id=rider.id, points=points, kind=kind, ref="coupon:7", earned_on=other_month)
        rollback_unit_of_work()
    db.session.execute(text(
        "INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after) "
        "VALUES (:r, now(), '2025-01-01', -1, 'expiry', '2025', '', 'expiry', 99)"), {"r": rider.id})
    commit_unit_of_work()
    with pytest.raises(IntegrityError):
        db.session.execute(text(
            "INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after) "
            "VALUES (:r, now(), '2025-02-01', -1, 'expiry', '2025', '', 'expiry', 98)"), {"r": rider.id})
    rollback_unit_of_work()
    db.session.execute(text("UPDATE riders SET points_balance = 99 WHERE id = :r"), {"r": rider.id})
    commit_unit_of_work()
    assert balance(rider.id) == ledger_sum(rider.id) == 99


def test_balance_is_the_sum_of_entries_across_months(app, create_rider, create_partner):
    """Trips credited in two months, a debit and the year-end expiry: the balance equals the sum of the rider's
    entries, which lie in several partitions."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    first = month_start(service_day(utcnow()), 1)
    post(partner, [trip(f"a{i}", exited_at=local(first - timedelta(days=1), 8 + i)) for i in range(3)] +
         [trip(f"b{i}", exited_at=local(first, 0, 30 + i * 5), minutes=10) for i in range(2)], now=local(first, 2))
    post_entry(rider_id=rider.id, points=-4, kind=EntryKind.redemption, ref="coupon:1")
    post_entry(rider_id=rider.id, points=10, kind=EntryKind.adjustment, reason="old", earned_on=date(2024, 2, 1))
    commit_unit_of_work()
    assert expire_points(year=2025, rider_ids=[rider.id]) == 1  # the 6 points left of 2024's 10
    commit_unit_of_work()
    assert len(rows_by_partition("ledger_entries")) >= 3
    assert balance(rider.id) == ledger_sum(rider.id) == 5 * (METRES // 1000)


def test_triggers_and_checks_hold_on_each_partition(app, create_rider):
    """A partition itself refuses what the parent refuses: editing or deleting a ledger entry, deleting a trip,
    an entry of zero points."""
    rider = create_rider()
    entry = post_entry(rider_id=rider.id, points=5, kind=EntryKind.adjustment, reason="credit")
    commit_unit_of_work()
    part = f"ledger_entries_{entry.earned_on:%Y_%m}"
    for statement in (f"UPDATE {part} SET points = 50 WHERE id = :id", f"DELETE FROM {part} WHERE id = :id"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement), {"id": entry.id})
        rollback_unit_of_work()
    with pytest.raises(DBAPIError, match="trips are kept"):
        db.session.execute(text(
            f"INSERT INTO trips_{entry.earned_on:%Y_%m} (source, trip_id, batch_id, rider_ref, rider_id, "
            "entry_station, exit_station, entered_at, exited_at, service_day, distance_m, rule_version_id, points, "
            "co2e_grams, status) VALUES ('afc', 'x', 0, 'r', NULL, '0109', '0114', now(), now(), :day, 1, 1, 0, 0, "
            "'held')"), {"day": entry.earned_on})
        db.session.execute(text(f"DELETE FROM trips_{entry.earned_on:%Y_%m}"))
    rollback_unit_of_work()
    with pytest.raises(IntegrityError, match="points_not_zero"):
        db.session.execute(text(
            f"INSERT INTO {part} (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after) "
            "VALUES (:r, now(), :day, 0, 'adjustment', '', 'x', '', 5)"), {"r": rider.id, "day": entry.earned_on})
    rollback_unit_of_work()
    assert ledger_sum(rider.id) == 5


class Statements:
    """The SQL a block of code runs (with its parameters), caught from the engine."""

    def __init__(self) -> None:
        """Nothing caught yet."""
        self.caught: list[tuple[str, object]] = []

    def __enter__(self) -> Statements:
        """Start listening."""
        event.listen(db.engine, "before_cursor_execute", self._catch)
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop listening."""
        event.remove(db.engine, "before_cursor_execute", self._catch)

    def _catch(self, conn, cursor, statement, parameters, context, executemany) -> None:
        """Keep one statement."""
        if not statement.lstrip().upper().startswith("EXPLAIN"):
            self.caught.append((statement, parameters))

    def partitions_planned(self) -> set[str]:
        """The partitions of trips and ledger_entries that the plans of the caught statements read."""
        found: set[str] = set()
        connection = db.session.connection()
        for statement, parameters in self.caught:
            if not re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", statement, re.IGNORECASE):
                continue
            plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar_one()
            found |= set(PARTITION.findall(json.dumps(plan)))
        return found


def test_the_year_end_expiry_reads_only_the_year_it_closes(app, create_rider):
    """Expiring 2025 reads the ledger from 1 January 2025 on (its plans name no month of 2023 or 2024), and
    still expires what is left of the 2024 points."""
    rider = create_rider()
    post_entry(rider_id=rider.id, points=30, kind=EntryKind.adjustment, reason="old", earned_on=date(2024, 3, 1))
    post_entry(rider_id=rider.id, points=20, kind=EntryKind.adjustment, reason="new", earned_on=date(2025, 3, 1))
    commit_unit_of_work()
    with Statements() as statements:
        assert expire_points(year=2025) == 1
    planned = statements.partitions_planned()
    commit_unit_of_work()
    assert "ledger_entries_2025_01" in planned
    assert all(name >= "ledger_entries_2025_01" for name in planned), planned
    assert not any(name.startswith("trips_") for name in planned)
    assert balance(rider.id) == ledger_sum(rider.id) == 20


def test_the_monthly_settlement_run_reads_no_trip_or_ledger_partition(app, create_rider):
    """The settlement run bills coupons (a table of their own, not partitioned): its plans read no partition of
    trips or of the ledger, however many months they hold."""
    last_month = month_start(service_day(utcnow()), -1)
    with Statements() as statements:
        run_period(last_month)
    assert statements.caught and statements.partitions_planned() == set()
    rollback_unit_of_work()


def test_the_daily_cap_probe_reads_one_month(app, create_rider, create_partner):
    """The cap's probe of what a rider earned that day (rider, service day) runs in the one partition of that day;
    the other months' are never executed."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    post(partner, [trip("d1", exited_at=utcnow() - timedelta(hours=1))], now=utcnow())
    day = service_day(utcnow() - timedelta(hours=1))
    plan = db.session.execute(text(
        "EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF, SUMMARY OFF) SELECT c.r, (SELECT SUM(t.points) FROM trips t "
        "WHERE t.rider_id = c.r AND t.service_day = c.d) FROM (VALUES (CAST(:r AS integer), CAST(:d AS date))) "
        "c(r, d)"), {"r": rider.id, "d": day}).scalar_one()
    executed: set[str] = set()

    def walk(node: dict) -> None:
        """Collect the partitions a plan node and its children actually scanned."""
        if node.get("Relation Name", "").startswith("trips_") and node.get("Actual Loops", 0) > 0:
            executed.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    assert executed == {f"trips_{day:%Y_%m}"}
    assert db.session.scalar(select(func.sum(LedgerEntry.points)).where(LedgerEntry.rider_id == rider.id)) == \
        METRES // 1000


def test_the_ledger_key_serves_the_riders_page(app, create_rider, create_partner):
    """Each ledger partition carries one index fewer: the primary key (rider_id, id, earned_on) is what a rider's
    newest-first page reads (no ix_ledger_rider beside it), and the trip-credit guard stays."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    post(partner, [trip(f"p{i}", exited_at=utcnow() - timedelta(hours=1 + i)) for i in range(3)], now=utcnow())
    indexes = dict(db.session.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ledger_entries'")).tuples().all())
    assert "ix_ledger_rider" not in indexes and "uq_ledger_trip" in indexes
    assert indexes["pk_ledger_entries"].endswith("(rider_id, id, earned_on)")
    db.session.execute(text("SET LOCAL enable_seqscan = off"))  # a few rows: make the planner show the index it has
    plan = "\n".join(db.session.scalars(text(
        "EXPLAIN SELECT id FROM ledger_entries WHERE rider_id = :r AND id < :before ORDER BY id DESC LIMIT 20"),
        {"r": rider.id, "before": 2 ** 62}))
    used = set(re.findall(r"using (\S+) on (ledger_entries_\d{4}_\d{2})", plan))
    assert used and {name for name, _ in used} <= {f"{part}_pkey" for _, part in used}
    assert [entry.points for entry in db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.rider_id == rider.id).order_by(LedgerEntry.id.desc()))] == \
        [METRES // 1000] * 3


def test_the_feeds_crediting_statements_are_planned_for_their_parameters(app, create_rider, create_partner,
                                                                        database_url):
    """The feed's statements get no generic plan on a pooled connection, however often it runs them: a generic
    plan made while a month's partition is empty and analyzed so (it is made ahead) would scan that partition in
    full for every rider once the month fills. Here every partition is analyzed empty, as after a restore."""
    create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("ANALYZE trips, ledger_entries, riders, rider_links")
    db.engine.dispose()  # the calls below share the pool's one connection, and its prepared statements
    start = utcnow() - timedelta(days=13)
    for n in range(12):  # a service day each: twelve rides of one day would pass its cap, whatever the hour
        assert post(partner, [trip(f"t{n}", exited_at=start + timedelta(days=n))]).credited == 1
    plans = db.session.execute(text(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%INSERT INTO trips%'"
    )).all()
    assert plans, "the crediting statement was not prepared"
    assert all(generic == 0 and custom >= 5 for generic, custom in plans), plans
