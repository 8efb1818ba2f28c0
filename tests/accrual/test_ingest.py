"""Trip ingestion: every refusal reason, the daily cap, held trips, replays, big batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from metropoints.accrual.models import LedgerEntry, Trip, TripBatch, TripRejection, TripStatus
from metropoints.accrual.operations import link_rider_ref
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider
from metropoints.core.timeutil import utcnow
from tests.helpers import METRES, balance, noon_yesterday, post, trip


def test_linked_trip_is_credited(app, create_rider, create_partner):
    """A trip of a linked reference earns floor(km x 1) points and 44 g/km CO2e, recorded with its rule version."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    result = post(partner, [trip("t1")])
    assert (result.credited, result.held, result.duplicates, result.rejected) == (1, 0, 0, [])
    row = db.session.scalar(select(Trip))
    assert row.distance_m == METRES and row.points == METRES // 1000
    assert row.co2e_grams == round(METRES * 44 / 1000) and row.status == TripStatus.credited
    assert row.rule_version_id == 1
    entry = db.session.scalar(select(LedgerEntry))
    assert (entry.points, entry.kind.value, entry.trip_pk, entry.balance_after) == (6, "trip", row.id, 6)
    assert balance(rider.id) == 6


@pytest.mark.parametrize(("override", "reason"), [
    ({"entry_station": "9999"}, "unknown_station"),
    ({"exit_station": "0114", "entry_station": "0114"}, "same_station"),
    ({"entered_at": (utcnow() - timedelta(minutes=30)).isoformat()}, "bad_times"),  # after the exit, 1 h ago
    ({"trip_id": None}, "malformed"),
    ({"rider_ref": ""}, "malformed"),
    ({"entered_at": "yesterday"}, "malformed"),
    ({"entered_at": "2026-01-01T10:00:00"}, "malformed"),  # no offset: the time is a guess
    ({"source": "AFC!"}, "malformed"),
    ({"entry_station": 109}, "malformed"),
])
def test_refusal_reasons(app, create_partner, override, reason):
    """Each bad row is refused with its own reason and recorded; the good row beside it still counts."""
    partner, _ = create_partner()
    result = post(partner, [trip("good"), {**trip("bad"), **override}])
    assert [(r.trip_id, r.reason) for r in result.rejected] == [("bad" if override.get("trip_id", 1) else "", reason)]
    assert result.held == 1
    stored = db.session.scalar(select(TripRejection))
    assert stored.reason == reason and stored.line_no == 2 and '"trip_id"' in stored.row_json


def test_time_and_network_refusals(app, create_partner):
    """too_old (exit > 30 days ago), in_future (> 5 min ahead), station_not_open, implausible_speed (> 80 km/h)."""
    partner, _ = create_partner()
    now = utcnow()
    rows = [
        trip("old", exited_at=now - timedelta(days=30, minutes=5)),
        trip("future", exited_at=now + timedelta(minutes=6)),
        trip("fast", minutes=4),  # 6.065 km in 4 minutes: 91 km/h
        trip("ok-speed", minutes=5),  # 6.065 km in 5 minutes: 72.8 km/h
        trip("almost-future", exited_at=now + timedelta(minutes=4)),
    ]
    result = post(partner, rows)
    assert {r.trip_id: r.reason for r in result.rejected} == {
        "old": "too_old", "future": "in_future", "fast": "implausible_speed"}
    assert result.held == 2


def test_station_not_open(app, create_partner):
    """A trip through a station before its section opened is refused (checked against the network's dates)."""
    from metropoints.accrual.ingest import check_rows
    from metropoints.accrual.network import get_network
    from metropoints.accrual.rules import load_rulebook

    # Line 3 east (0315) opened 2026-06-30; judge a trip of 2026-06-29 as if "now" were that evening.
    now = utcnow().replace(year=2026, month=6, day=29, hour=14)
    row = trip("early", entry="0314", exit="0315", exited_at=now - timedelta(hours=1))
    staged, rejected, _ = check_rows([row], first_line=1, network=get_network(), rules=load_rulebook(), now=now)
    assert staged == [] and [(r.reason, r.trip_id) for r in rejected] == [("station_not_open", "early")]
    row = trip("later", entry="0314", exit="0315", exited_at=now + timedelta(days=1))
    staged, rejected, _ = check_rows([row], first_line=1, network=get_network(), rules=load_rulebook(),
                                     now=now + timedelta(days=1, hours=1))
    assert rejected == [] and staged[0][9] == 1939


def test_cap_crossing_inside_one_batch(app, create_rider, create_partner):
    """60 points a day: the trip that crosses the cap earns the remainder, later ones earn 0 (status capped)."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    day_end = noon_yesterday() + timedelta(hours=3)
    # 0101 -> 0129 is a long ride on line 1; eleven 6-point rides in exit order: 10 x 6 = 60, the 11th earns 0.
    rows = [trip(f"t{i:02d}", exited_at=day_end - timedelta(minutes=30 * (11 - i)), minutes=20) for i in range(11)]
    result = post(partner, rows)
    assert (result.credited, result.capped) == (10, 1)
    points = dict(db.session.execute(select(Trip.trip_id, Trip.points)).all())
    assert points["t10"] == 0 and sum(points.values()) == 60
    assert balance(rider.id) == 60


def test_cap_remainder_and_across_batches(app, create_rider, create_partner):
    """Across batches the cap counts what the day already earned; the crossing trip earns just the remainder."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    base = noon_yesterday()
    post(partner, [trip(f"a{i}", exited_at=base - timedelta(minutes=30 * i)) for i in range(9)])  # 54 points
    assert balance(rider.id) == 54
    # 0101 -> 0114 is 17.5 km (17 points): it crosses the cap and earns the remaining 6; the next earns 0.
    result = post(partner, [trip("b1", entry="0101", exited_at=base + timedelta(minutes=40)),
                            trip("b2", exited_at=base + timedelta(minutes=80))])
    assert (result.credited, result.capped) == (0, 2)
    points = dict(db.session.execute(select(Trip.trip_id, Trip.points).where(Trip.trip_id.in_(["b1", "b2"]))).all())
    assert points == {"b1": 6, "b2": 0}
    assert balance(rider.id) == 60


def test_a_resend_beside_new_trips_takes_no_room_under_the_cap(app, create_rider, create_partner):
    """A (source, trip_id) stored already is left out before the batch is allocated: resent beside a trip that
    crosses the cap, it is a duplicate and that trip still earns the remainder."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    base = noon_yesterday()
    post(partner, [trip(f"a{i}", exited_at=base - timedelta(minutes=30 * i)) for i in range(9)])  # 54 points
    # a0 again (exit before b1's), then 0101 -> 0114, 17.5 km: b1 crosses the cap and earns the 6 points left.
    result = post(partner, [trip("a0", exited_at=base),
                            trip("b1", entry="0101", exited_at=base + timedelta(minutes=40))])
    assert (result.credited, result.capped, result.duplicates) == (0, 1, 1)
    assert db.session.scalar(select(Trip.points).where(Trip.trip_id == "b1")) == 6
    assert db.session.scalar(select(func.count()).select_from(Trip).where(Trip.trip_id == "a0")) == 1
    assert balance(rider.id) == 60


def test_held_then_linked(app, create_rider, create_partner):
    """A trip of an unlinked reference is held, and credited (under the cap) when a rider links the reference."""
    partner, _ = create_partner()
    result = post(partner, [trip("h1", ref="card-9"), trip("h2", ref="card-9", exited_at=utcnow() - timedelta(days=3))])
    assert result.held == 2 and result.credited == 0
    rider = create_rider()
    _, credited = link_rider_ref(rider=rider, source="afc", ref="card-9")
    commit_unit_of_work()
    assert credited == 2
    assert balance(rider.id) == 12
    statuses = set(db.session.scalars(select(Trip.status)))
    assert statuses == {TripStatus.credited}
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 2


def test_held_older_than_30_days_not_credited(app, create_rider, create_partner):
    """Linking credits held trips 30 days back at most; older ones stay held."""
    partner, _ = create_partner()
    now = utcnow()
    post(partner, [trip("recent", ref="card-9", exited_at=now - timedelta(days=2))])
    old = post(partner, [trip("old", ref="card-9", exited_at=now - timedelta(days=29, hours=23))])
    assert old.held == 1
    rider = create_rider()
    _, credited = link_rider_ref(rider=rider, source="afc", ref="card-9", now=now + timedelta(days=1, hours=1))
    commit_unit_of_work()
    assert credited == 1
    assert db.session.scalar(select(Trip.status).where(Trip.trip_id == "old")) == TripStatus.held


def test_replay_credits_nothing_more(app, create_rider, create_partner):
    """Replaying a batch (and repeats inside one) credits nothing more: (source, trip_id) is credited once."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    rows = [trip("t1"), trip("t2", exited_at=utcnow() - timedelta(hours=3)), trip("t1")]
    first = post(partner, rows)
    assert (first.credited, first.duplicates) == (2, 1)
    again = post(partner, rows)
    assert (again.credited, again.duplicates, again.held) == (0, 3, 0)
    assert balance(rider.id) == 12
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 2


def test_same_trip_id_from_another_source_is_another_trip(app, create_rider, create_partner):
    """Uniqueness is per (source, trip_id): the fare system and the app may both use id 42."""
    create_rider(links=[("afc", "card-1"), ("app", "user-1")])
    partner, _ = create_partner()
    other = trip("42", source="app", ref="user-1", exited_at=utcnow() - timedelta(hours=3))
    result = post(partner, [trip("42"), other])
    assert result.credited == 2


def test_batch_of_10000_with_one_malformed_row(app, create_partner):
    """A batch of 10,000 with one malformed row credits the 9,999 others and reports the one."""
    from sqlalchemy import text

    partner, _ = create_partner()
    db.session.execute(text(
        "INSERT INTO riders (phone, password_hash, display_name, points_balance, created_at) "
        "SELECT '1500000' || lpad(g::text, 4, '0'), 'x', 'r' || g, 0, now() FROM generate_series(1, 2000) g"))
    db.session.execute(text("INSERT INTO rider_links (rider_id, source, ref, created_at) "
                            "SELECT id, 'afc', 'card-' || id, now() FROM riders"))
    commit_unit_of_work()
    now = utcnow()
    rows = [trip(f"t{i}", ref=f"card-{i % 2000 + 1}", exited_at=now - timedelta(hours=1 + i // 2000))
            for i in range(10_000)]
    rows[5000] = {**rows[5000], "entered_at": "not a time"}
    result = post(partner, rows)
    assert result.credited == 9_999 and result.capped == 0
    assert [(r.trip_id, r.reason, r.line_no) for r in result.rejected] == [("t5000", "malformed", 5001)]
    assert db.session.scalar(select(func.sum(Rider.points_balance))) == 9_999 * 6
    batch = db.session.scalar(select(TripBatch))
    assert (batch.rows_done, batch.credited, batch.rejected, batch.status.value) == (10_000, 9_999, 1, "done")


def test_sweep_credits_trips_that_missed_a_concurrent_link(app, create_rider, create_partner, runner):
    """A trip held while its reference was being linked is credited by the sweep (once, however often it runs)."""
    from sqlalchemy import text

    partner, _ = create_partner()
    post(partner, [trip("in-flight", ref="card-7")])
    rider = create_rider()
    # The link committed without seeing the in-flight trip, as happens when both run at once.
    db.session.execute(text("INSERT INTO rider_links (rider_id, source, ref, created_at) "
                            "VALUES (:r, 'afc', 'card-7', now())"), {"r": rider.id})
    commit_unit_of_work()
    assert runner.invoke(args=["trips", "sweep-held"]).output.strip() == "credited 1 held trip(s)"
    assert runner.invoke(args=["trips", "sweep-held"]).output.strip() == "credited 0 held trip(s)"
    assert balance(rider.id) == 6
