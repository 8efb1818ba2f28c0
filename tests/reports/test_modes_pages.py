"""The back office's green-modes pages: the review queue (credit or refuse with a reason, audited), bus lines, and
rule versions of a mode from the rules page. Operators only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from metropoints.accrual.models import BusLine, RuleVersion, Trip, TripStatus
from metropoints.accrual.operations import link_rider_ref, receive_trips
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import AuditEntry, Role
from metropoints.core.operations import register_rider
from tests.helpers import noon_yesterday, trip


@pytest.fixture
def held_trip(app, create_partner):
    """A rider's fourth ride between the same two stations in a day, waiting for review."""
    app.config["REVIEW_FARMED_TRIPS"] = True
    rider = register_rider(phone="13900001111", password="password123", display_name=None)
    link_rider_ref(rider=rider, source="afc", ref="card-1")
    partner, _ = create_partner()
    start = noon_yesterday() - timedelta(hours=6)
    rows = [trip(f"t{i}", exited_at=start + timedelta(hours=i), entry="0109" if i % 2 else "0114",
                 exit="0114" if i % 2 else "0109") for i in range(4)]
    receive_trips(partner=partner, payload={"trips": rows})
    commit_unit_of_work()
    app.config["REVIEW_FARMED_TRIPS"] = False
    return db.session.scalar(select(Trip).where(Trip.status == TripStatus.review))


def test_review_queue_lists_and_credits_a_trip(operator, held_trip, get_en, post_en):
    """The queue lists the trip with why it waits; crediting it with a reason moves it out and audits it."""
    html = get_en("/backoffice/reviews").get_data(as_text=True)
    assert "afc · t3" in html and "Back and forth between the same two stations" in html
    reply = post_en("/backoffice/reviews", {"trip_pk": held_trip.id, "decision": "credited", "reason": "checked"})
    assert reply.status_code == 302
    db.session.expire_all()
    assert db.session.get(Trip, held_trip.id).status == TripStatus.credited
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.subject == f"trip:{held_trip.id}")) == \
        "trips.review_credited"
    assert "Nothing waits for review." in get_en("/backoffice/reviews").get_data(as_text=True)


def test_refusing_needs_a_reason(operator, held_trip, post_en):
    """A decision without a reason is a form error (422) and changes nothing; with one, the trip is refused."""
    reply = post_en("/backoffice/reviews", {"trip_pk": held_trip.id, "decision": "refused", "reason": ""})
    assert reply.status_code == 422 and 'data-field="reason"' in reply.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Trip, held_trip.id).status == TripStatus.review
    post_en("/backoffice/reviews", {"trip_pk": held_trip.id, "decision": "refused", "reason": "shared card"})
    db.session.expire_all()
    assert db.session.get(Trip, held_trip.id).status == TripStatus.refused


def test_bus_lines_page_sets_a_line(operator, get_en, post_en):
    """The form adds a line with its average trip distance, lists it, and refuses a bad distance on its field."""
    assert post_en("/backoffice/bus-lines", {"code": "105", "name": "105路", "avg_trip_m": "4200"}).status_code == 302
    assert db.session.get(BusLine, "105").avg_trip_m == 4200
    html = get_en("/backoffice/bus-lines").get_data(as_text=True)
    assert "105路" in html and "4.2 km" in html
    bad = post_en("/backoffice/bus-lines", {"code": "106", "avg_trip_m": "0"})
    assert bad.status_code == 422 and 'data-field="avg_trip_m"' in bad.get_data(as_text=True)


def test_rules_page_adds_a_version_of_a_mode(operator, post_en, get_en):
    """The rules page adds a walking version with its step numbers and shows each mode's versions."""
    reply = post_en("/backoffice/rules", {"mode": "walk", "points_per_km": "0", "daily_cap": "60", "mode_cap": "8",
                                          "co2e_factor": "70", "factor_name": "walking 2027",
                                          "factor_source": "city study", "steps_threshold": "4000",
                                          "points_per_1000_steps": "0.5", "metres_per_step": "0.75",
                                          "note": "shorter steps"})
    assert reply.status_code == 302, reply.get_data(as_text=True)
    version = db.session.scalar(select(RuleVersion).where(RuleVersion.mode == "walk"))
    assert (version.steps_threshold, version.points_per_1000_steps_milli, version.mm_per_step, version.mode_cap,
            version.factor_source) == (4000, 500, 750, 8, "city study")
    html = get_en("/backoffice/rules").get_data(as_text=True)
    assert "points per 1,000 steps above 4000 a day: 0.5" in html and "Factor source: city study" in html


@pytest.mark.parametrize("path", ["/backoffice/reviews", "/backoffice/bus-lines"])
def test_merchants_cannot_open_them(client, create_portal_user, login, path):
    """A merchant owner gets 403 on the green-modes pages."""
    login(create_portal_user(Role.merchant_owner))
    assert client.get(path).status_code == 403
