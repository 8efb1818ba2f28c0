"""Trips that look farmed wait for review with no points: too many a day, back and forth between two stations, trips
overlapping in time across modes or sources. An operator credits one (under the caps of its own day) or refuses it,
with a reason, audited, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from metropoints.accrual.errors import NotUnderReview
from metropoints.accrual.models import LedgerEntry, ReviewDecision, Trip, TripChange, TripReview, TripStatus
from metropoints.accrual.operations import receive_trips
from metropoints.accrual.review import decide_review, review_queue
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.errors import InvalidInput
from metropoints.core.models import AuditEntry
from tests.accrual.test_modes import bike, bus
from tests.helpers import METRES, balance, noon_yesterday, post, trip


@pytest.fixture(autouse=True)
def review_on(app):
    """The review of farmed-looking trips, as outside tests."""
    app.config["REVIEW_FARMED_TRIPS"] = True
    yield
    app.config["REVIEW_FARMED_TRIPS"] = False


@pytest.fixture
def rider(create_rider):
    """A rider known to the fare system, the app and the bike operator."""
    return create_rider(links=[("afc", "card-1"), ("app", "card-1"), ("bikeco", "card-1")])


def statuses() -> dict[str, tuple[str, str]]:
    """trip_id -> (status, reason) of every stored trip."""
    db.session.expire_all()
    return {t.trip_id: (t.status.value, t.reason) for t in db.session.scalars(select(Trip))}


def rides(n: int, *, start, stations: list[tuple[str, str]], source: str = "afc", prefix: str = "t") -> list[dict]:
    """`n` metro rides an hour apart, 20 minutes each, cycling through `stations`."""
    return [trip(f"{prefix}{i}", source=source, exited_at=start + timedelta(hours=i), entry=a, exit=b)
            for i, (a, b) in ((i, stations[i % len(stations)]) for i in range(n))]


PAIRS = [("0109", "0114"), ("0114", "0120"), ("0120", "0201"), ("0201", "0109")]
SHORT = [("0101", "0104"), ("0104", "0107"), ("0107", "0110"), ("0110", "0101")]


def test_more_trips_a_day_than_the_setting_wait_for_review(app, create_partner, rider):
    """The trips of a rider's day beyond REVIEW_TRIPS_PER_DAY (8) wait for review, across batches too."""
    partner, _ = create_partner()
    start = noon_yesterday() - timedelta(hours=11)
    first = post(partner, rides(6, start=start, stations=PAIRS))
    second = post(partner, rides(4, start=start + timedelta(hours=6), stations=PAIRS, prefix="u"))
    assert (first.credited + first.capped, first.review) == (6, 0)
    assert (second.credited + second.capped, second.review) == (2, 2)
    seen = statuses()
    assert seen["u2"] == seen["u3"] == ("review", "too_many_trips")
    assert db.session.scalar(select(Trip.points).where(Trip.trip_id == "u3")) == 0


def test_back_and_forth_between_two_stations_waits_for_review(app, create_partner, rider):
    """More than 3 metro trips a day between the same two stations (either way): the 4th and later wait."""
    partner, _ = create_partner()
    start = noon_yesterday() - timedelta(hours=6)
    result = post(partner, rides(5, start=start, stations=[("0109", "0114"), ("0114", "0109")]))
    assert (result.credited, result.review) == (3, 2)
    assert statuses()["t3"] == ("review", "back_and_forth")


def test_trips_overlapping_in_time_across_modes_wait_for_review(app, create_partner, rider):
    """A bike ride during a metro ride of the same rider (another mode and source) waits for review; so does a
    metro ride overlapping one stored by an earlier batch."""
    partner, _ = create_partner()
    end = noon_yesterday()
    post(partner, [trip("m1", exited_at=end, minutes=30)])
    result = post(partner, [bike("k1", ended_at=end - timedelta(minutes=10), minutes=15, distance_m=2000),
                            trip("m2", source="app", exited_at=end + timedelta(minutes=20), minutes=25,
                                 entry="0120", exit="0201")])
    assert result.review == 2
    assert statuses()["k1"] == ("review", "overlapping") and statuses()["m2"] == ("review", "overlapping")


def test_overlap_within_one_batch(app, create_partner, rider):
    """Within one batch the later of two overlapping trips waits; a bus without an alighting time overlaps nothing
    by its end, only by falling inside another trip."""
    partner, _ = create_partner()
    end = noon_yesterday()
    result = post(partner, [trip("m1", exited_at=end, minutes=30),
                            bus("b1", line="105", boarded_at=end - timedelta(minutes=10), minutes=None),
                            bus("b2", line="105", boarded_at=end + timedelta(minutes=5), minutes=None)])
    assert statuses() == {"m1": ("credited", ""), "b1": ("review", "overlapping"), "b2": ("credited", "")}
    assert result.review == 1


@pytest.fixture(autouse=True)
def line_105(app):
    """Bus line 105."""
    from metropoints.accrual.buslines import set_bus_line

    set_bus_line(code="105", name="", avg_trip_m=3000, actor=None)
    commit_unit_of_work()


@pytest.fixture
def operator(app):
    """An operator account."""
    from metropoints.core.models import Role
    from metropoints.core.operations import create_user

    user = create_user(email="ops@metro.example", password="correct-horse", role=Role.operator)
    commit_unit_of_work()
    return user


def test_review_then_credit_earns_under_the_cap_of_the_trips_day(app, create_partner, rider, operator):
    """Credited after review, a trip earns its points under the daily cap of its own day as it stands then, with a
    ledger entry, a review record and an audit entry; it leaves the queue and cannot be decided again."""
    partner, _ = create_partner()
    start = noon_yesterday() - timedelta(hours=11)
    # Back and forth: the 4th ride (6 points) waits; 18 credited.
    post(partner, rides(4, start=start, stations=[("0109", "0114"), ("0114", "0109")]))
    waiting = review_queue()
    assert [t.trip_id for t in waiting] == ["t3"] and waiting[0].points == 0
    raw = waiting[0].distance_m // 1000
    # A long bike ride later that day leaves 5 of the day's 60.
    room = 60 - balance(rider.id) - (raw - 1)
    post(partner, [bike("k1", ended_at=start + timedelta(hours=8), minutes=100, distance_m=room * 1000)])
    assert balance(rider.id) == 60 - (raw - 1)
    review = decide_review(trip_pk=waiting[0].id, decision="credited", reason="commuter, checked", actor=operator)
    commit_unit_of_work()
    stored = db.session.get(Trip, waiting[0].id)
    assert (stored.status, stored.points, stored.reason) == (TripStatus.capped, raw - 1, "")
    assert (review.decision, review.points, review.decided_by) == (ReviewDecision.credited, raw - 1, operator.email)
    assert balance(rider.id) == 60
    entry = db.session.scalar(select(LedgerEntry).where(LedgerEntry.trip_pk == stored.id))
    assert (entry.points, entry.balance_after) == (raw - 1, 60)
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "trips.review_credited"))
    assert (audit.subject, audit.reason, audit.actor_id) == (f"trip:{stored.id}", "commuter, checked", operator.id)
    assert review_queue() == []
    from metropoints.reports.rollups import differences

    assert differences() == []  # the day's rollup took the trip when it was credited
    with pytest.raises(NotUnderReview):
        decide_review(trip_pk=stored.id, decision="refused", reason="again", actor=operator)


def test_review_then_refuse(app, create_partner, rider, operator):
    """Refused after review, a trip earns nothing, keeps the reason, and is recorded and audited."""
    partner, _ = create_partner()
    start = noon_yesterday() - timedelta(hours=6)
    post(partner, rides(4, start=start, stations=[("0109", "0114"), ("0114", "0109")]))
    [waiting] = review_queue()
    with pytest.raises(InvalidInput):
        decide_review(trip_pk=waiting.id, decision="refused", reason="  ", actor=operator)
    decide_review(trip_pk=waiting.id, decision="refused", reason="card sharing", actor=operator)
    commit_unit_of_work()
    assert statuses()["t3"] == ("refused", "refused_by_operator")
    assert balance(rider.id) == 3 * (METRES // 1000)
    assert db.session.scalar(select(TripReview.reason)) == "card sharing"
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.subject == f"trip:{waiting.id}")) == \
        "trips.review_refused"


def test_overlap_across_midnight(app, create_partner, rider):
    """A ride that ends after midnight (the next service day) overlaps one that began before it and ended that day;
    the one reported later waits for review whichever day it counts on."""
    from datetime import datetime

    from metropoints.core.timeutil import SERVICE_OFFSET, utcnow

    partner, _ = create_partner()
    day = utcnow().astimezone(SERVICE_OFFSET).date() - timedelta(days=3)
    midnight = datetime(day.year, day.month, day.day, tzinfo=SERVICE_OFFSET) + timedelta(days=1)
    post(partner, [trip("late", exited_at=midnight + timedelta(minutes=20), minutes=30)])  # 23:50 - 00:20
    result = post(partner, [bike("k1", ended_at=midnight - timedelta(minutes=2), minutes=18, distance_m=2000)])
    assert result.review == 1 and statuses()["k1"] == ("review", "overlapping")


def test_credit_after_review_and_a_batch_at_once_keep_the_cap(app, create_partner, rider, operator):
    """Crediting a reviewed trip while a batch credits the same rider's day: both lock the rider first, so the day
    never earns more than its cap and the balance is the sum of the ledger."""
    from metropoints.core.db import db as database
    from tests.helpers import run_at_once

    partner, _ = create_partner()
    start = noon_yesterday() - timedelta(hours=10)
    post(partner, rides(4, start=start, stations=[("0109", "0114"), ("0114", "0109")]))
    [waiting] = review_queue()
    later = [trip(f"x{i}", exited_at=start + timedelta(hours=5 + i), entry="0101", exit="0122", minutes=45)
             for i in range(3)]

    def credit():
        decide_review(trip_pk=waiting.id, decision="credited", reason="checked", actor=operator)
        commit_unit_of_work()

    def batch():
        from metropoints.accrual.models import Partner

        receive_trips(partner=database.session.get(Partner, partner.id), payload={"trips": later})
        commit_unit_of_work()

    results = run_at_once(app, [credit, batch])
    assert not any(isinstance(r, Exception) for r in results), results
    db.session.expire_all()
    total = db.session.scalar(select(db.func.sum(Trip.points)).where(Trip.rider_id == rider.id))
    assert total == balance(rider.id) == 60
    ledger = db.session.scalar(select(db.func.sum(LedgerEntry.points)).where(LedgerEntry.rider_id == rider.id))
    assert ledger == 60


def test_held_trips_credited_on_linking_are_reviewed_like_live_ones(app, create_rider, create_partner):
    """Trips held for an unlinked reference meet the review patterns when the link credits them: back and forth
    beyond the setting (counting the rider's stored trips of the day) and an overlap with a stored trip wait for
    review; the others are credited."""
    from metropoints.accrual.operations import link_rider_ref

    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    start = noon_yesterday() - timedelta(hours=6)
    there_and_back = [("0109", "0114"), ("0114", "0109")]
    assert post(partner, rides(2, start=start, stations=there_and_back)).credited == 2
    held = [*rides(2, start=start + timedelta(hours=2), stations=there_and_back, source="app", prefix="h"),
            trip("h-over", source="app", exited_at=start + timedelta(minutes=10), minutes=25, entry="0120",
                 exit="0201"),
            trip("h-ok", source="app", exited_at=start + timedelta(hours=5), entry="0120", exit="0201")]
    assert post(partner, held).held == 4
    link_rider_ref(rider=rider, source="app", ref="card-1")
    commit_unit_of_work()
    seen = statuses()
    assert seen["h0"] == ("credited", "") and seen["h1"] == ("review", "back_and_forth")
    assert seen["h-over"] == ("review", "overlapping") and seen["h-ok"] == ("credited", "")
    points = dict(db.session.execute(select(Trip.trip_id, Trip.points)).all())
    assert points["h1"] == points["h-over"] == 0 and points["h0"] == METRES // 1000 and points["h-ok"] > 0
    assert balance(rider.id) == sum(points.values())
    changed = set(db.session.scalars(select(TripChange.trip_pk)))  # for the carbon export's next run
    assert changed == set(db.session.scalars(select(Trip.id).where(Trip.source == "app")))


def test_review_from_the_command_line(app, create_partner, rider, runner):
    """`flask trips review list` lists the held trips with why; `trips review decide PK --credit/--refuse --reason`
    decides one (audited as the CLI's); a decided trip, an unknown or huge id, a missing decision are clear errors."""
    partner, _ = create_partner()
    start = noon_yesterday() - timedelta(hours=6)
    post(partner, rides(5, start=start, stations=[("0109", "0114"), ("0114", "0109")]))
    listed = runner.invoke(args=["trips", "review", "list"])
    assert listed.exit_code == 0 and "2 of 2 trip(s) under review" in listed.output
    assert listed.output.count("back_and_forth") == 2 and "afc:t3" in listed.output
    held = db.session.scalars(select(Trip.id).where(Trip.status == TripStatus.review).order_by(Trip.id)).all()
    done = runner.invoke(args=["trips", "review", "decide", str(held[0]), "--credit", "--reason", "checked the gates",
                               "--by", "ops@metro.example"])
    assert done.exit_code == 0 and f"trip {held[0]} credited: {METRES // 1000} point(s)" in done.output
    refused = runner.invoke(args=["trips", "review", "decide", str(held[1]), "--refuse", "--reason", "farming"])
    assert refused.exit_code == 0 and "refused: 0 point(s)" in refused.output
    assert statuses()["t4"] == ("refused", "refused_by_operator")
    assert set(db.session.scalars(select(TripChange.trip_pk))) == set(held)  # both decisions, for the export
    again = runner.invoke(args=["trips", "review", "decide", str(held[1]), "--credit", "--reason", "x"])
    assert again.exit_code == 1 and "not_under_review" in again.output
    for bad in (["999999"], [str(2**63)], [str(held[0])]):
        reply = runner.invoke(args=["trips", "review", "decide", *bad, "--refuse", "--reason", "x"])
        assert reply.exit_code in (1, 2) and "Traceback" not in reply.output, reply.output
    undecided = runner.invoke(args=["trips", "review", "decide", str(held[0]), "--reason", "x"])
    assert undecided.exit_code == 2 and "--credit or --refuse" in undecided.output
    audit = db.session.scalars(select(AuditEntry.actor_label).where(AuditEntry.action.like("trips.review_%"))).all()
    assert audit == ["cli:ops@metro.example", "cli:cli"]
    assert balance(rider.id) == 4 * (METRES // 1000)
