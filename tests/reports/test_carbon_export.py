"""`flask carbon export --period YYYY-MM --out DIR`: a month's credited trips per mode as CSV with a JSON summary of
the totals and each file's SHA-256; every trip in at most one export; a second export of the month holds nothing
already exported; a correction after an export is an adjustment line in the next one."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from metropoints.accrual.models import TripMode
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import SERVICE_OFFSET, utcnow
from metropoints.reports.operations import export_period
from metropoints.settlement.periods import next_period, period_label, previous_period
from tests.helpers import run_at_once
from tests.modes import credit_trip

MONTH = previous_period()  # the month exported: the one that ended last
LABEL = period_label(MONTH)


def in_month(day: int, hour: int = 12, month=MONTH) -> datetime:
    """A wall-clock time in Shenyang on a day of the month."""
    return datetime.combine(month.replace(day=day), time(hour), tzinfo=SERVICE_OFFSET)


@pytest.fixture
def month_of_trips(app, create_rider):
    """Two riders' trips of every mode in the exported month (on its first and last service days too), a trip of
    the month before and one of this month (neither exported), and a trip held for review (not credited)."""
    riders = [create_rider(), create_rider()]
    last_day = (next_period(MONTH) - timedelta(days=1)).day
    trips = [
        credit_trip(rider_id=riders[0].id, mode="metro", metres=6065, exited_at=in_month(1, 0)),
        credit_trip(rider_id=riders[0].id, mode="bus", metres=4321, exited_at=in_month(3)),
        credit_trip(rider_id=riders[1].id, mode="bike", metres=2500, exited_at=in_month(3)),
        credit_trip(rider_id=riders[1].id, mode="walk", steps=8000, exited_at=in_month(4, 23)),
        credit_trip(rider_id=riders[1].id, mode="metro", metres=12_000, exited_at=in_month(last_day, 23)),
    ]
    credit_trip(rider_id=riders[0].id, mode="metro", exited_at=in_month(28, month=previous_period(in_month(1))))
    credit_trip(rider_id=riders[0].id, mode="metro", exited_at=utcnow() - timedelta(minutes=5))
    review = credit_trip(rider_id=riders[1].id, mode="bus", metres=9000, exited_at=in_month(5))
    db.session.execute(text("UPDATE trips SET status = 'review', reason = 'too_many_trips', points = 0 "
                            "WHERE id = :id"), {"id": review.id})
    commit_unit_of_work()
    return trips


def export(runner, out: Path, period: str = LABEL):
    """Run the command; its result."""
    return runner.invoke(args=["carbon", "export", "--period", period, "--out", str(out)])


def read_export(out: Path, export_id: int) -> tuple[dict, dict[str, list[dict]]]:
    """(summary, mode -> CSV rows) of one export in `out`."""
    stem = f"carbon-{LABEL}-export-{export_id}"
    summary = json.loads((out / f"{stem}-summary.json").read_text(encoding="utf-8"))
    rows = {}
    for mode in TripMode:
        with (out / f"{stem}-{mode.value}.csv").open(encoding="utf-8", newline="") as handle:
            rows[mode.value] = list(csv.DictReader(handle))
    return summary, rows


def test_export_writes_each_mode_with_its_summary(month_of_trips, runner, tmp_path):
    """One CSV per mode with the month's credited trips (km, grams, points, rule version, the factor), nothing of
    other months nor the trip under review; the summary's totals are the files' sums and each SHA-256 is its file's."""
    reply = export(runner, tmp_path)
    assert reply.exit_code == 0, reply.output
    assert reply.output.splitlines()[-1].startswith(f"export 1 of {LABEL}: 5 trips, 0 adjustments; summary ")
    summary, rows = read_export(tmp_path, 1)
    metro, _, _, walk, late = month_of_trips
    assert [(r["kind"], r["trip_id"], r["km"], r["co2e_grams"], r["points"], r["rule_version"], r["co2e_g_per_km"])
            for r in rows["metro"]] == [
        ("trip", metro.trip_id, "6.065", "267", "6", str(metro.rule_version_id), "44"),
        ("trip", late.trip_id, "12.000", "528", "12", str(late.rule_version_id), "44")]
    assert [(r["km"], r["co2e_grams"], r["points"], r["co2e_g_per_km"]) for r in rows["bus"]] == [
        ("4.321", "130", "4", "30")]
    assert [(r["km"], r["co2e_grams"], r["points"]) for r in rows["bike"]] == [("2.500", "188", "2")]
    assert [(r["km"], r["co2e_grams"], r["points"], r["service_day"]) for r in rows["walk"]] == [
        ("5.600", "420", "5", walk.service_day.isoformat())]
    assert rows["metro"][0]["service_day"] == MONTH.isoformat() and all(r["first_export"] == "1" for r in rows["bus"])
    assert summary["period"] == LABEL and summary["service_days"]["first"] == MONTH.isoformat()
    assert summary["service_days"]["last"] == late.service_day.isoformat()
    assert summary["totals"] == {"trip_lines": 5, "adjustment_lines": 0, "km": 30.486,
                                 "co2e_grams": 267 + 528 + 130 + 188 + 420, "points": 29}
    for listed in summary["files"]:
        data = (tmp_path / listed["file"]).read_bytes()
        assert listed["sha256"] == hashlib.sha256(data).hexdigest()
        assert data.decode("utf-8").startswith("line_id,kind,source,trip_id,service_day,km,co2e_grams,points,")
    assert {f["mode"]: f["trip_lines"] for f in summary["files"]} == {"metro": 2, "bus": 1, "bike": 1, "walk": 1}
    stored = db.session.execute(text("SELECT summary_json FROM carbon_exports WHERE id = 1")).scalar_one()
    assert json.loads(stored) == summary


def test_every_trip_once_and_a_second_export_holds_nothing_already_exported(month_of_trips, runner, tmp_path,
                                                                            create_rider):
    """The second export of the month lists no trip of the first; a trip credited in between (a held trip linked
    late) is in the second only; a third is empty, its files only a header."""
    assert export(runner, tmp_path).exit_code == 0
    late = credit_trip(rider_id=create_rider().id, mode="bike", metres=1000, exited_at=in_month(10))
    commit_unit_of_work()
    reply = export(runner, tmp_path)
    assert reply.exit_code == 0 and f"export 2 of {LABEL}: 1 trips, 0 adjustments" in reply.output
    summary, rows = read_export(tmp_path, 2)
    assert [r["trip_id"] for r in rows["bike"]] == [late.trip_id] and rows["metro"] == rows["bus"] == []
    assert summary["totals"]["trip_lines"] == 1
    assert export(runner, tmp_path).exit_code == 0
    summary, rows = read_export(tmp_path, 3)
    assert summary["totals"] == {"trip_lines": 0, "adjustment_lines": 0, "km": 0.0, "co2e_grams": 0, "points": 0}
    assert all(r == [] for r in rows.values())
    assert db.session.execute(text(
        "SELECT COUNT(*), COUNT(DISTINCT trip_pk) FROM carbon_export_lines WHERE kind = 'trip'")).one() == (6, 6)


def test_a_correction_after_an_export_is_an_adjustment_line_in_the_next(month_of_trips, runner, tmp_path):
    """A trip refused after its export is taken back whole in the next export, a trip whose grams and points
    changed by the difference; each trip's lines add up to the trip as it stands, and nothing is listed twice."""
    metro, bus, _, _, late = month_of_trips
    assert export(runner, tmp_path).exit_code == 0
    db.session.execute(text("UPDATE trips SET status = 'refused', reason = 'refused_by_operator' WHERE id = :id"),
                       {"id": bus.id})
    db.session.execute(text("UPDATE trips SET co2e_grams = 500, points = 10 WHERE id = :id"), {"id": late.id})
    commit_unit_of_work()
    reply = export(runner, tmp_path)
    assert reply.exit_code == 0 and "0 trips, 2 adjustments" in reply.output
    summary, rows = read_export(tmp_path, 2)
    assert [(r["kind"], r["trip_id"], r["km"], r["co2e_grams"], r["points"], r["first_export"]) for r in rows["bus"]] \
        == [("adjustment", bus.trip_id, "-4.321", "-130", "-4", "1")]
    assert [(r["kind"], r["trip_id"], r["km"], r["co2e_grams"], r["points"]) for r in rows["metro"]] == [
        ("adjustment", late.trip_id, "0.000", "-28", "-2")]
    assert summary["totals"] == {"trip_lines": 0, "adjustment_lines": 2, "km": -4.321, "co2e_grams": -158,
                                 "points": -6}
    sums = dict(db.session.execute(text(
        "SELECT trip_pk, SUM(co2e_grams) FROM carbon_export_lines GROUP BY trip_pk")).all())
    assert (sums[bus.id], sums[late.id], sums[metro.id]) == (0, 500, 267)
    assert export(runner, tmp_path).exit_code == 0
    assert read_export(tmp_path, 3)[0]["totals"]["adjustment_lines"] == 0


def pending() -> int:
    """The changed trips waiting for the next export."""
    return db.session.execute(text("SELECT COUNT(*) FROM trip_changes")).scalar_one()


def test_changes_after_an_export_are_in_the_next_export_whatever_its_month(month_of_trips, runner, tmp_path):
    """After the month's export, a trip credited after its review, a trip refused and a changed trip of a month
    never exported: the next export, of this month, holds the first two (the reviewed trip's first line, the
    refused one's adjustment) beside its own trips, the summary counts them under their month; a new export of the
    month holds nothing."""
    from sqlalchemy import select

    from metropoints.accrual.models import Trip, TripStatus
    from metropoints.accrual.rollups import record_trip_changes

    metro = month_of_trips[0]
    assert export(runner, tmp_path).exit_code == 0
    reviewed = db.session.scalar(select(Trip).where(Trip.status == TripStatus.review))
    # As an operator's credit after review leaves it (the fixture's trip has its entry posted already), and a
    # refusal; each writer of a stored trip names it in trip_changes (accrual's review and linking do).
    db.session.execute(text("UPDATE trips SET status = 'credited', reason = '', points = 9 WHERE id = :id"),
                       {"id": reviewed.id})
    db.session.execute(text("UPDATE trips SET status = 'refused', reason = 'refused_by_operator' WHERE id = :id"),
                       {"id": metro.id})
    earlier = previous_period(in_month(1))
    db.session.execute(text("UPDATE trips SET points = points + 1 WHERE service_day >= :first AND service_day < :next"),
                       {"first": earlier, "next": MONTH})
    record_trip_changes(f"{int(reviewed.id)}, {int(metro.id)}")
    record_trip_changes("SELECT id FROM trips WHERE service_day >= :first AND service_day < :next",
                        {"first": earlier, "next": MONTH})  # a month never exported: its own export takes it
    commit_unit_of_work()
    assert pending() == 3
    now = utcnow() - timedelta(minutes=2)
    this = period_label(now.astimezone(SERVICE_OFFSET).date().replace(day=1))
    reply = export(runner, tmp_path, this)
    assert reply.exit_code == 0 and "2 trips, 1 adjustments" in reply.output, reply.output
    summary = json.loads((tmp_path / f"carbon-{this}-export-2-summary.json").read_text(encoding="utf-8"))
    assert summary["lines_by_period"] == {LABEL: {"trip_lines": 1, "adjustment_lines": 1},
                                          this: {"trip_lines": 1, "adjustment_lines": 0}}
    lines = db.session.execute(text("SELECT kind, trip_pk, co2e_grams FROM carbon_export_lines WHERE export_id = 2 "
                                    "ORDER BY id")).all()
    db.session.expire_all()
    grams = db.session.get(Trip, reviewed.id).co2e_grams
    assert ("trip", reviewed.id, grams) in lines and ("adjustment", metro.id, -267) in lines
    assert pending() == 0
    reply = export(runner, tmp_path)
    assert reply.exit_code == 0 and "0 trips, 0 adjustments" in reply.output


def test_a_trip_arriving_after_its_month_was_exported_is_in_the_next_export(month_of_trips, runner, tmp_path,
                                                                          create_rider):
    """The feed takes trips up to 30 days old: one that arrives after its month was exported is in the next export
    of any month, once."""
    now = utcnow() - timedelta(minutes=2)
    this = period_label(now.astimezone(SERVICE_OFFSET).date().replace(day=1))
    assert export(runner, tmp_path, this).exit_code == 0
    late = credit_trip(rider_id=create_rider().id, mode="bike", metres=1500, exited_at=now)
    commit_unit_of_work()
    reply = export(runner, tmp_path)
    assert reply.exit_code == 0 and "6 trips, 0 adjustments" in reply.output, reply.output
    assert db.session.execute(text("SELECT export_id FROM carbon_export_lines WHERE trip_pk = :id"),
                              {"id": late.id}).scalars().all() == [2]
    assert "0 trips, 0 adjustments" in export(runner, tmp_path, this).output


def test_two_exports_at_once_take_each_trip_once(month_of_trips, app, tmp_path):
    """Two exports of the month at the same moment: one takes the trips, the other waits and finds none left."""
    def run(folder: str):
        result = export_period(period=LABEL, out_dir=tmp_path / folder, actor_label="test")
        commit_unit_of_work()
        return result.export.trip_lines

    results = run_at_once(app, [lambda: run("a"), lambda: run("b")])
    assert sorted(results) == [0, 5]
    assert db.session.execute(text("SELECT COUNT(*) FROM carbon_export_lines")).scalar_one() == 5


def test_export_lines_are_kept_as_sent(month_of_trips, runner, tmp_path):
    """A line already exported cannot be changed or removed (a trigger refuses it): corrections are new lines."""
    from sqlalchemy.exc import DBAPIError

    assert export(runner, tmp_path).exit_code == 0
    for statement in ("UPDATE carbon_export_lines SET points = 0", "DELETE FROM carbon_export_lines"):
        with pytest.raises(DBAPIError, match="kept as sent"):
            db.session.execute(text(statement))
        db.session.rollback()


def test_the_export_reads_only_its_months_partition(app):
    """The query of new trips names the month's service days, so PostgreSQL reads that month's partition only."""
    from metropoints.reports.operations import _NEW_TRIPS

    select_part = _NEW_TRIPS[_NEW_TRIPS.index("SELECT"):]
    plan = "\n".join(db.session.execute(text(f"EXPLAIN {select_part}"), {
        "export_id": 1, "first": MONTH, "next": next_period(MONTH)}).scalars())
    scanned = set(re.findall(r" on (trips\w*)", plan))
    assert scanned == {f"trips_{MONTH:%Y_%m}"}, plan


@pytest.mark.parametrize("period", ["2026-13", "26-11", "november", "2026-1", "", "1999-12"])
def test_a_bad_period_is_a_clear_error(runner, tmp_path, period):
    """A period that is not YYYY-MM is refused with the reason, exit 2, no traceback, nothing exported."""
    reply = export(runner, tmp_path, period)
    assert reply.exit_code == 2 and "Invalid value for --period" in reply.output
    assert "Traceback" not in reply.output and not list(tmp_path.iterdir())


def test_a_month_not_begun_and_a_file_for_a_directory_are_clear_errors(runner, tmp_path):
    """Next month cannot be exported yet; --out must be a directory (made when missing)."""
    reply = export(runner, tmp_path, period_label(next_period(next_period(MONTH))))
    assert reply.exit_code == 2 and "has not begun" in reply.output
    taken = tmp_path / "file"
    taken.write_text("x")
    reply = export(runner, taken)
    assert reply.exit_code == 2 and "Invalid value for '--out'" in reply.output
    assert export(runner, tmp_path / "new" / "dir").exit_code == 0
    assert db.session.execute(text("SELECT COUNT(*) FROM carbon_exports")).scalar_one() == 1


@pytest.mark.sqlite
def test_export_on_sqlite(sqlite_app, tmp_path):
    """The zero-setup default exports too: the month's trips once, a correction as an adjustment line."""
    from metropoints.accrual.rules import ensure_default_rules
    from metropoints.core.operations import register_rider

    ensure_default_rules()
    rider = register_rider(phone="13900000001", password="password123")
    trips = [credit_trip(rider_id=rider.id, mode=mode, metres=3000, exited_at=in_month(2)) for mode in ("metro", "bus")]
    commit_unit_of_work()
    first = export_period(period=LABEL, out_dir=tmp_path, actor_label="test")
    commit_unit_of_work()
    db.session.execute(text("UPDATE trips SET status = 'refused' WHERE id = :id"), {"id": trips[1].id})
    commit_unit_of_work()
    second = export_period(period=LABEL, out_dir=tmp_path, actor_label="test")
    commit_unit_of_work()
    assert (first.export.trip_lines, first.export.adjustment_lines) == (2, 0)
    assert (second.export.trip_lines, second.export.adjustment_lines) == (0, 1)
    _, rows = read_export(tmp_path, second.export.id)
    assert [(r["kind"], r["km"], r["co2e_grams"]) for r in rows["bus"]] == [("adjustment", "-3.000", "-90")]
