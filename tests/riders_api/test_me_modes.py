"""A rider's trips of every mode in /me/trips: each with its mode and rule version, a trip under review shown so with
why, a second report of a ride shown as a duplicate."""

from __future__ import annotations

from datetime import timedelta

from conftest import auth
from sqlalchemy import select, text

from metropoints.accrual.buslines import set_bus_line
from metropoints.core.db import commit_unit_of_work
from tests.accrual.test_modes import bike, bus, walk
from tests.helpers import noon_yesterday, trip


def test_me_trips_carry_mode_rule_version_and_review(app, client, create_rider, rider_token, create_partner):
    """Each item has mode and rule_version; a back-and-forth ride is `review` with its reason and no points."""
    app.config["REVIEW_FARMED_TRIPS"] = True
    try:
        set_bus_line(code="105", name="", avg_trip_m=4000, actor=None)
        rider = create_rider(links=[(s, "card-1") for s in ("afc", "app", "bikeco", "health")])
        _, partner = create_partner()
        start = noon_yesterday() - timedelta(hours=8)
        rows = [trip(f"r{i}", exited_at=start + timedelta(hours=i), entry="0109" if i % 2 else "0114",
                     exit="0114" if i % 2 else "0109") for i in range(4)]
        rows += [trip("r0-app", source="app", exited_at=start + timedelta(minutes=1), entry="0114", exit="0109"),
                 bus("b1", boarded_at=start + timedelta(hours=5), minutes=None),
                 bike("k1", ended_at=start + timedelta(hours=6), distance_m=2500), walk("w1", steps=6000)]
        reply = client.post("/api/v1/trips", json={"trips": rows}, headers=auth(partner)).get_json()
        assert (reply["credited"], reply["review"], reply["duplicates"]) == (6, 1, 1)
        commit_unit_of_work()
        items = client.get("/api/v1/me/trips?limit=100", headers=auth(rider_token(rider))).get_json()["items"]
        by_id = {item["trip_id"]: item for item in items}
        assert {item["mode"] for item in items} == {"metro", "bus", "bike", "walk"}
        assert all(isinstance(item["rule_version"], int) for item in items)
        assert (by_id["r3"]["status"], by_id["r3"]["reason"], by_id["r3"]["points"]) == ("review", "back_and_forth", 0)
        assert (by_id["r0-app"]["status"], by_id["r0-app"]["reason"]) == ("duplicate", "reported_by_other_source")
        assert (by_id["b1"]["line"], by_id["b1"]["km"], by_id["b1"]["entry_station"]) == ("105", 4.0, None)
        assert (by_id["w1"]["steps"], by_id["w1"]["points"]) == (6000, 3)
        assert by_id["r0"]["rule_version"] != by_id["b1"]["rule_version"]
    finally:
        app.config["REVIEW_FARMED_TRIPS"] = False


def test_me_figures_come_from_the_riders_row(app, client, create_rider, rider_token, create_partner):
    """/me's totals and by_mode are the sums of the rider's credited and capped trips of each mode, through every
    way a trip comes to count (a batch, a held trip credited when its card is linked, a review credited), read from
    the rider's own row: the request sends no statement about the trips."""
    import re

    from metropoints.accrual.models import ReviewDecision, Trip, TripStatus
    from metropoints.accrual.operations import link_rider_ref
    from metropoints.accrual.review import decide_review
    from metropoints.core.db import db
    from metropoints.core.models import Rider
    from metropoints.reports import rollups
    from tests.redemption.test_round_trips import statements

    app.config["REVIEW_FARMED_TRIPS"] = True
    try:
        set_bus_line(code="105", name="", avg_trip_m=4000, actor=None)
        rider = create_rider(links=[(s, "card-1") for s in ("afc", "bikeco", "health")])
        create_rider(links=[("afc", "card-9")])  # another rider, whose trip is not in these figures
        _, partner = create_partner()
        start = noon_yesterday() - timedelta(hours=8)
        rows = [trip(f"r{i}", exited_at=start + timedelta(hours=i), entry="0109" if i % 2 else "0114",
                     exit="0114" if i % 2 else "0109") for i in range(4)]
        rows += [bus("b1", source="afc", boarded_at=start + timedelta(hours=5), minutes=None),
                 bike("k1", ended_at=start + timedelta(hours=6), distance_m=2500), walk("w1", steps=6000),
                 trip("held", ref="card-2", exited_at=start - timedelta(days=2)),
                 trip("o1", ref="card-9", exited_at=start)]
        reply = client.post("/api/v1/trips", json={"trips": rows}, headers=auth(partner)).get_json()
        assert (reply["credited"], reply["review"], reply["held"]) == (7, 1, 1), reply
        link_rider_ref(rider=db.session.get(Rider, rider.id), source="afc", ref="card-2")
        under_review = db.session.scalar(select(Trip.id).where(Trip.status == TripStatus.review))
        decide_review(trip_pk=under_review, decision=ReviewDecision.credited, reason="checked", actor=None)
        commit_unit_of_work()
        token = rider_token(rider)
        with statements() as sent:
            me = client.get("/api/v1/me", headers=auth(token)).get_json()
        assert not [s for s in sent if re.search(r"\b(FROM|JOIN)\s+trips\b", s)], sent
        counted = db.session.execute(text(
            "SELECT mode, SUM(distance_m), SUM(co2e_grams), SUM(points) FROM trips WHERE rider_id = :r "
            "AND status IN ('credited', 'capped') GROUP BY mode"), {"r": rider.id}).all()
        assert {mode for mode, *_ in counted} == {"metro", "bus", "bike", "walk"}
        for mode, metres, grams, points in counted:
            assert me["by_mode"][mode] == {"km": round(metres / 1000, 3), "co2e_grams": grams, "points": points}
        assert me["km_total"] == round(sum(row[1] for row in counted) / 1000, 3)
        assert me["co2e_grams_total"] == sum(row[2] for row in counted)
        assert rollups.differences() == []
    finally:
        app.config["REVIEW_FARMED_TRIPS"] = False
