"""Trip ingestion: every refusal reason, the daily cap, held trips, replays, big batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from metropoints.accrual.models import LedgerEntry, Trip, TripBatch, TripRejection, TripStatus
from metropoints.accrual.operations import link_rider_ref, receive_trips
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider
from metropoints.core.timeutil import utcnow
from tests.helpers import METRES, trip


def post(partner, rows):
    """Send rows through the feed operation and commit, as one API call does."""
    result = receive_trips(partner=partner, payload={"trips": rows})
    commit_unit_of_work()
    return result


def balance(rider_id: int) -> int:
    """The rider's stored balance, fresh from the database."""
    db.session.expire_all()
    return db.session.get(Rider, rider_id).points_balance


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
