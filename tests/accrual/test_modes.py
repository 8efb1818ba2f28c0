"""Green modes in the partner feed: each mode's row shape and refusal reasons, the mixed batch, bus distances,
walking days counted once across sources, the caps across modes, the same metro ride from two sources credited once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from metropoints.accrual.buslines import set_bus_line
from metropoints.accrual.models import LedgerEntry, Partner, RuleVersion, Trip, TripMode, TripRejection, TripStatus
from metropoints.accrual.operations import receive_trips
from metropoints.accrual.rules import create_rule_version
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider
from metropoints.core.timeutil import SERVICE_OFFSET, utcnow
from tests.helpers import METRES, balance, noon_yesterday, post, run_at_once, trip


def bus(trip_id: str, *, ref: str = "card-1", source: str = "afc", line: str = "105",
        boarded_at: datetime | None = None, minutes: int | None = 30, **overrides) -> dict:
    """A bus row: boarded an hour and a half ago, alighted `minutes` later (None: no alighting time)."""
    start = boarded_at or utcnow() - timedelta(minutes=90)
    row = {"trip_id": trip_id, "source": source, "rider_ref": ref, "mode": "bus", "line": line,
           "boarded_at": start.isoformat()}
    if minutes is not None:
        row["alighted_at"] = (start + timedelta(minutes=minutes)).isoformat()
    return {**row, **overrides}


def bike(trip_id: str, *, ref: str = "card-1", source: str = "bikeco", distance_m: object = 3000,
         ended_at: datetime | None = None, minutes: int = 15, **overrides) -> dict:
    """A shared-bike ride of `distance_m`, ending an hour ago after `minutes`."""
    end = ended_at or utcnow() - timedelta(hours=1)
    row = {"trip_id": trip_id, "source": source, "rider_ref": ref, "mode": "bike",
           "started_at": (end - timedelta(minutes=minutes)).isoformat(), "ended_at": end.isoformat(),
           "distance_m": distance_m}
    return {**row, **overrides}


def walk(trip_id: str, *, ref: str = "card-1", source: str = "health", steps: object = 8000, day=None,
         **overrides) -> dict:
    """A day's step count (default: yesterday in Shenyang)."""
    day = day or (utcnow().astimezone(SERVICE_OFFSET).date() - timedelta(days=1))
    row = {"trip_id": trip_id, "source": source, "rider_ref": ref, "mode": "walk", "day": str(day), "steps": steps}
    return {**row, **overrides}


@pytest.fixture
def rider(create_rider):
    """A rider known to the fare system, the city app, the bike operator and the health app by one reference each."""
    return create_rider(links=[(s, "card-1") for s in ("afc", "app", "bikeco", "health")])


@pytest.fixture
def line_105(app):
    """Bus line 105, 4.2 km a trip on average."""
    set_bus_line(code="105", name="105路", avg_trip_m=4200, actor=None)
    commit_unit_of_work()


NOW = utcnow()


@pytest.mark.parametrize(("row", "reason"), [
    ({"mode": "tram"}, "malformed"),
    ({"mode": 3}, "malformed"),
    (bus("x", line=None), "malformed"),
    (bus("x", line="999"), "unknown_line"),
    (bus("x", boarded_at=NOW - timedelta(hours=2), minutes=-5), "bad_times"),
    ({**bus("x"), "boarded_at": "soon"}, "malformed"),
    (bus("x", distance_m="far"), "malformed"),
    (bus("x", distance_m=0), "malformed"),
    (bus("x", boarded_at=NOW + timedelta(minutes=10), minutes=None), "in_future"),
    (bus("x", boarded_at=NOW - timedelta(days=31)), "too_old"),
    (bus("x", minutes=10, distance_m=15_000), "implausible_speed"),  # 90 km/h
    (bike("x", distance_m=None), "missing_distance"),
    (bike("x", distance_m=""), "missing_distance"),
    (bike("x", distance_m=-3), "malformed"),
    (bike("x", distance_m=True), "malformed"),
    (bike("x", started_at="2026-01-01T10:00:00"), "malformed"),
    (bike("x", minutes=-5), "bad_times"),
    (bike("x", distance_m=7000, minutes=15), "implausible_speed"),  # 28 km/h
    (bike("x", ended_at=NOW - timedelta(days=31)), "too_old"),
    (bike("x", ended_at=NOW + timedelta(minutes=20)), "in_future"),
    (walk("x", steps=50_001), "implausible_steps"),
    (walk("x", steps="many"), "malformed"),
    (walk("x", steps=None), "malformed"),
    (walk("x", day="2026-13-01"), "malformed"),
    (walk("x", day=20261201), "malformed"),
    (walk("x", day=NOW.astimezone(SERVICE_OFFSET).date() + timedelta(days=1)), "in_future"),
    (walk("x", day=NOW.astimezone(SERVICE_OFFSET).date() - timedelta(days=31)), "too_old"),
])
def test_refusal_reasons_of_each_mode(app, create_partner, line_105, row, reason):
    """Each mode's bad row is refused with its own reason and kept; the good metro row beside it still counts."""
    partner, _ = create_partner()
    bad = {**trip("x"), **row} if "trip_id" not in row else row
    result = post(partner, [trip("good"), bad])
    assert [(r.trip_id, r.reason) for r in result.rejected] == [("x", reason)]
    assert result.held == 1
    stored = db.session.scalar(select(TripRejection))
    assert stored.reason == reason and stored.line_no == 2


def test_mixed_batch_credits_every_good_row_beside_one_bad_row_of_each_mode(app, create_partner, rider, line_105):
    """A batch with a good and a malformed row of each mode credits the four good ones, each with its mode's rule
    version, distance and CO2e factor, and refuses the four others with their reasons."""
    partner, _ = create_partner()
    base = noon_yesterday()
    rows = [
        trip("m1", exited_at=base - timedelta(hours=3)), trip("m-bad", entry_station="9999"),
        bus("b1", boarded_at=base - timedelta(hours=2), minutes=20, distance_m=5200), bus("b-bad", line="nope"),
        bike("k1", ended_at=base - timedelta(hours=1), distance_m=3500), bike("k-bad", distance_m=None),
        walk("w1", steps=9000), walk("w-bad", steps=99_999),
    ]
    result = post(partner, rows)
    assert {r.trip_id: r.reason for r in result.rejected} == {
        "m-bad": "unknown_station", "b-bad": "unknown_line", "k-bad": "missing_distance", "w-bad": "implausible_steps"}
    assert (result.credited, result.capped, result.held, result.review, result.duplicates) == (4, 0, 0, 0, 0)
    trips = {t.trip_id: t for t in db.session.scalars(select(Trip))}
    versions = {v.mode: v for v in db.session.scalars(select(RuleVersion))}
    for trip_id, mode in (("m1", "metro"), ("b1", "bus"), ("k1", "bike"), ("w1", "walk")):
        assert trips[trip_id].mode == mode and trips[trip_id].rule_version_id == versions[mode].id
    assert (trips["b1"].line, trips["b1"].distance_m, trips["b1"].points) == ("105", 5200, 5)
    assert (trips["b1"].co2e_grams, trips["k1"].co2e_grams) == (156, 263)  # grams rounded half up
    # 9,000 steps: 6,000 above the 3,000 threshold, 1 point per 1,000; 0.7 m a step.
    assert (trips["w1"].steps, trips["w1"].points, trips["w1"].distance_m) == (9000, 6, 6300)
    assert trips["w1"].entry_station == "" and trips["w1"].status == TripStatus.credited
    assert balance(rider.id) == 6 + 5 + 3 + 6


def test_bus_distance_given_else_the_lines_average_else_the_city_default(app, create_partner, rider, line_105):
    """A bus trip's distance is distance_m when given, else its line's average, else BUS_DEFAULT_TRIP_M."""
    set_bus_line(code="222", name="", avg_trip_m=None, actor=None)
    commit_unit_of_work()
    partner, _ = create_partner()
    base = noon_yesterday()
    post(partner, [bus("given", boarded_at=base - timedelta(hours=4), distance_m=2500),
                   bus("average", boarded_at=base - timedelta(hours=2), minutes=None),
                   bus("default", line="222", boarded_at=base)])
    metres = dict(db.session.execute(select(Trip.trip_id, Trip.distance_m)).tuples().all())
    assert metres == {"given": 2500, "average": 4200, "default": app.config["BUS_DEFAULT_TRIP_M"]}


def test_csv_file_of_several_modes(app, runner, create_partner, rider, line_105, tmp_path):
    """`flask trips import` takes a file with a mode column and each mode's columns; empty cells are absent."""
    import csv

    from metropoints.accrual.ingest import ALL_FIELDS

    create_partner("modes-feed")
    base = noon_yesterday()
    rows = [trip("m1", exited_at=base - timedelta(hours=3)), bus("b1", boarded_at=base, minutes=None),
            bike("k1", ended_at=base + timedelta(hours=2), distance_m="2000"), walk("w1", steps="5000"),
            walk("w-bad", steps="")]
    path = tmp_path / "modes.csv"
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=ALL_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    result = runner.invoke(args=["trips", "import", str(path), "--partner", "modes-feed"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].endswith(
        "credited 4, capped 0, duplicates 0, held 0, rejected 1")
    assert balance(rider.id) == 6 + 4 + 2 + 2


def test_walking_day_tops_up_a_higher_count_and_ignores_a_lower_one(app, create_partner, rider):
    """One walking credit per rider and day across sources: the highest count counts; a later higher count earns only
    the difference, a later lower (or equal) one earns nothing and is a duplicate."""
    partner, _ = create_partner()
    assert post(partner, [walk("h1", steps=8000)]).credited == 1  # 5 points
    assert balance(rider.id) == 5
    lower = post(partner, [walk("a1", source="app", steps=6000)])
    assert (lower.credited, lower.duplicates) == (0, 1)
    higher = post(partner, [walk("a2", source="app", steps=12_500)])  # 9 points in all: 4 more
    assert higher.credited == 1 and balance(rider.id) == 9
    rows = {t.trip_id: t for t in db.session.scalars(select(Trip))}
    assert (rows["a1"].status, rows["a1"].reason, rows["a1"].points) == (TripStatus.duplicate,
                                                                         "step_count_not_higher", 0)
    assert (rows["a2"].points, rows["a2"].distance_m) == (4, 12_500 * 7 // 10 - 8000 * 7 // 10)
    assert sum(t.distance_m for t in rows.values() if t.status == TripStatus.credited) == 12_500 * 7 // 10
    from metropoints.reports.rollups import differences

    assert differences() == []


def test_walking_reports_in_one_batch_either_order(app, create_partner, rider):
    """Within one batch, in either order, the day's walking earns what its highest count gives, once."""
    partner, _ = create_partner()
    yesterday = utcnow().astimezone(SERVICE_OFFSET).date() - timedelta(days=1)
    first = post(partner, [walk("low", steps=7000), walk("high", source="app", steps=11_000)])
    assert (first.credited, first.duplicates) == (2, 0) and balance(rider.id) == 8  # 4, then 4 more
    other_day = yesterday - timedelta(days=1)
    second = post(partner, [walk("high2", steps=11_000, day=other_day),
                            walk("low2", source="app", steps=7000, day=other_day)])
    assert (second.credited, second.duplicates) == (1, 1) and balance(rider.id) == 16


def test_caps_across_modes(app, create_partner, rider, line_105, monkeypatch):
    """A rider's day earns at most the daily cap across every mode, and each mode at most its own cap when set."""
    from metropoints.accrual import rules

    # The version is made as if the day before the rides began, so that all of them fall on one service day.
    monkeypatch.setattr(rules, "utcnow", lambda: noon_yesterday() - timedelta(hours=6))
    create_rule_version(points_per_km=1, daily_cap=60, co2e_factor_g_per_km=30, factor_name="bus", mode="bus",
                        mode_cap=10, actor_label="test")
    monkeypatch.undo()
    commit_unit_of_work()
    partner, _ = create_partner()
    base = noon_yesterday() - timedelta(hours=3)  # every ride on one service day, whatever the hour of the run
    rows = [bus("b1", boarded_at=base, minutes=20, distance_m=8000),  # 8
            bus("b2", boarded_at=base + timedelta(minutes=25), minutes=20, distance_m=8000),  # 2 of 8: bus cap
            trip("m1", exited_at=base + timedelta(minutes=90), minutes=40, entry="0101", exit="0122"),
            walk("w1", steps=50_000)]
    result = post(partner, rows)
    trips = {t.trip_id: t for t in db.session.scalars(select(Trip))}
    assert (trips["b1"].points, trips["b2"].points, trips["b2"].status) == (8, 2, TripStatus.capped)
    metro = trips["m1"]
    assert metro.points == min(metro.distance_m // 1000, 50)
    # Walking's own cap is 10 by default; the day's 60 across modes may cut it further.
    assert trips["w1"].points == min(10, 60 - 10 - metro.points)
    assert balance(rider.id) == sum(t.points for t in trips.values()) <= 60
    assert result.capped >= 1


def test_daily_cap_across_modes_and_batches(app, create_partner, rider, line_105):
    """Points of earlier batches in other modes count against the daily cap of a later one."""
    partner, _ = create_partner()
    base = noon_yesterday() - timedelta(hours=4)  # every ride on one service day, whatever the hour of the run
    post(partner, [bike(f"k{i}", ended_at=base + timedelta(minutes=30 * i), distance_m=6000, minutes=20)
                   for i in range(8)])  # 48 points
    post(partner, [bus("b1", boarded_at=base + timedelta(hours=5), minutes=30, distance_m=20_000)])
    assert balance(rider.id) == 60
    stored = db.session.scalar(select(Trip).where(Trip.trip_id == "b1"))
    assert (stored.points, stored.status) == (12, TripStatus.capped)


def test_same_metro_ride_from_two_sources_in_one_batch(app, create_partner, rider):
    """The same ride (rider, stations, entry within 3 minutes) from two sources in one batch credits once; the second
    report is kept as a duplicate with the reason; a ride 4 minutes apart, or from the same source, is not it."""
    partner, _ = create_partner()
    end = noon_yesterday()
    rows = [trip("afc-1", exited_at=end), trip("app-1", source="app", exited_at=end + timedelta(minutes=2)),
            trip("afc-2", exited_at=end + timedelta(hours=3)),
            trip("app-2", source="app", exited_at=end + timedelta(hours=3, minutes=4))]
    result = post(partner, rows)
    assert (result.credited, result.duplicates) == (3, 1)
    dup = db.session.scalar(select(Trip).where(Trip.trip_id == "app-1"))
    assert (dup.status, dup.reason, dup.points, dup.co2e_grams) == (TripStatus.duplicate,
                                                                   "reported_by_other_source", 0, 0)
    assert balance(rider.id) == 3 * (METRES // 1000)
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 3


def test_same_metro_ride_from_two_sources_across_batches(app, create_partner, rider):
    """A ride already credited from the fare system is a duplicate when the app reports it in a later batch."""
    partner, _ = create_partner()
    end = noon_yesterday()
    assert post(partner, [trip("afc-1", exited_at=end)]).credited == 1
    later = post(partner, [trip("app-1", source="app", exited_at=end - timedelta(minutes=3))])
    assert (later.credited, later.duplicates) == (0, 1)
    assert balance(rider.id) == METRES // 1000


def test_same_ride_from_two_sources_in_concurrent_batches(app, create_rider, create_partner):
    """Two sources' batches of the same rides at the same moment credit each ride once: the rider locks serialise
    them, and the second batch finds the first one's trips after its locks."""
    riders = [create_rider(links=[("afc", f"card-{i}"), ("app", f"card-{i}")]) for i in range(10)]
    partner, _ = create_partner()
    base = noon_yesterday() - timedelta(hours=8)
    rides = [(f"card-{i % 10}", base + timedelta(minutes=40 * (i // 10))) for i in range(60)]
    afc = [trip(f"afc-{n}", ref=ref, exited_at=end) for n, (ref, end) in enumerate(rides)]
    app_rows = [trip(f"app-{n}", ref=ref, source="app", exited_at=end + timedelta(minutes=1))
                for n, (ref, end) in enumerate(rides)]

    def delivery(rows):
        def call():
            result = receive_trips(partner=db.session.get(Partner, partner.id), payload={"trips": rows})
            commit_unit_of_work()
            return result
        return call

    first, second = run_at_once(app, [delivery(afc), delivery(app_rows)])
    assert not isinstance(first, Exception) and not isinstance(second, Exception), (first, second)
    assert first.credited + second.credited == 60 and first.duplicates + second.duplicates == 60
    db.session.expire_all()
    for rider in riders:
        assert db.session.get(Rider, rider.id).points_balance == 6 * (METRES // 1000)
    assert db.session.scalar(select(func.count()).select_from(Trip).where(Trip.status == TripStatus.duplicate)) == 60


def test_rule_versions_per_mode_keep_old_credits(app, create_partner, rider, line_105):
    """A new bus version applies to bus trips after it; metro keeps its version; earlier credits keep theirs."""
    partner, _ = create_partner()
    post(partner, [bus("b1", boarded_at=utcnow() - timedelta(hours=3), distance_m=5000)])
    old = db.session.scalar(select(Trip).where(Trip.trip_id == "b1"))
    new = create_rule_version(points_per_km=2, daily_cap=60, co2e_factor_g_per_km=25, factor_name="bus 2027",
                              factor_source="test source", mode="bus", actor_label="test",
                              effective_from=utcnow() - timedelta(seconds=30))
    commit_unit_of_work()
    post(partner, [bus("b2", boarded_at=utcnow() - timedelta(minutes=10), minutes=12, distance_m=5000),
                   trip("m1", exited_at=utcnow() - timedelta(minutes=30))])
    trips = {t.trip_id: t for t in db.session.scalars(select(Trip))}
    assert trips["b1"].rule_version_id == old.rule_version_id and trips["b1"].points == 5
    assert trips["b2"].rule_version_id == new.id and trips["b2"].points == 10
    assert db.session.get(RuleVersion, trips["m1"].rule_version_id).mode == TripMode.metro


def test_held_report_of_a_ride_already_credited_is_a_duplicate_on_linking(app, create_rider, create_partner):
    """A ride the app reported before the rider linked the app's reference, already credited from the fare system,
    is a duplicate when the link credits the held trips, not a second credit."""
    from metropoints.accrual.operations import link_rider_ref

    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    end = noon_yesterday()
    result = post(partner, [trip("afc-1", exited_at=end), trip("app-1", source="app", exited_at=end, minutes=21),
                            trip("app-2", source="app", exited_at=end + timedelta(hours=2))])
    assert (result.credited, result.held) == (1, 2)
    link_rider_ref(rider=rider, source="app", ref="card-1")
    commit_unit_of_work()
    rows = {t.trip_id: t for t in db.session.scalars(select(Trip))}
    assert (rows["app-1"].status, rows["app-1"].reason, rows["app-1"].points) == (
        TripStatus.duplicate, "reported_by_other_source", 0)
    assert rows["app-2"].status == TripStatus.credited
    assert balance(rider.id) == 2 * (METRES // 1000)


def test_cli_sets_a_modes_rules_and_bus_lines(app, runner):
    """`flask rules set --mode walk` adds walking's version with its step numbers, `rules list --mode` shows it;
    `flask buslines set` adds or changes a line, `buslines list` lists them; bad values are refused."""
    done = runner.invoke(args=["rules", "set", "--mode", "walk", "--daily-cap", "60", "--mode-cap", "12",
                               "--co2e-factor", "70", "--factor-name", "walking 2027", "--factor-source", "a study",
                               "--steps-threshold", "4000", "--points-per-1000-steps", "1.5",
                               "--metres-per-step", "0.72"])
    assert done.exit_code == 0, done.output
    assert "walk v" in done.output and "1.5 pt per 1,000 steps above 4000, 0.72 m a step" in done.output
    listed = runner.invoke(args=["rules", "list", "--mode", "walk"]).output.strip().splitlines()
    assert len(listed) == 1 and "walk cap 12/day" in listed[0]
    bad = runner.invoke(args=["rules", "set", "--mode", "bus", "--daily-cap", "60", "--co2e-factor", "30",
                              "--factor-name", "x"])
    assert bad.exit_code != 0 and "--points-per-km" in bad.output
    assert runner.invoke(args=["buslines", "set", "105", "--name", "105路", "--avg-trip-m", "4200"]).exit_code == 0
    assert runner.invoke(args=["buslines", "set", "222"]).exit_code == 0
    assert runner.invoke(args=["buslines", "set", "9", "--avg-trip-m", "0"]).exit_code == 1
    lines = runner.invoke(args=["buslines", "list"]).output.strip().splitlines()
    assert lines[-1] == "2 bus line(s)" and "4200 m a trip on average" in lines[0]
