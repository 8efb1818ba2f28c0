"""The review queue: trips that looked farmed (too many a day, back and forth, overlapping in time) wait, with no
points, until an operator credits or refuses them with a reason. Flush, never commit.

A decision locks the trip's rider first (as a batch does, so the day's cap holds against a batch running at the
same time), then the trip's row; a trip is decided once (its status is checked under the lock, and trip_reviews
holds one row per trip). A credited trip earns what its rule version gives under the caps of its own service day,
as they stand when it is credited; the trips' rollup takes it then.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select, text

from metropoints.accrual.allocation import allocate_cte
from metropoints.accrual.errors import NotUnderReview
from metropoints.accrual.ingest import _dialect_sql, lock_riders, post_trip_credits
from metropoints.accrual.models import HoldReason, ReviewDecision, Trip, TripReview, TripStatus
from metropoints.accrual.rollups import add_trips, record_trip_changes
from metropoints.core.db import db, sql_param
from metropoints.core.errors import InvalidInput, NotFound
from metropoints.core.models import User
from metropoints.core.operations import record_audit
from metropoints.core.timeutil import utcnow

MAX_REASON = 500


def review_queue(*, limit: int = 50, after: tuple[date, int] | None = None) -> list[Trip]:
    """Trips held for review, oldest service day first, a page of `limit` after the (service_day, id) given."""
    query = select(Trip).where(Trip.status == TripStatus.review)
    if after is not None:
        day, pk = after
        query = query.where((Trip.service_day > day) | ((Trip.service_day == day) & (Trip.id > pk)))
    return list(db.session.scalars(query.order_by(Trip.service_day, Trip.id).limit(limit)))


def count_under_review() -> int:
    """How many trips wait for review (the partial index holds just them)."""
    return db.session.scalar(select(db.func.count()).select_from(Trip).where(Trip.status == TripStatus.review))


def decide_review(*, trip_pk: int, decision: ReviewDecision | str, reason: str, actor: User | None,
                  actor_label: str = "", now: datetime | None = None) -> TripReview:
    """Credit or refuse a trip held for review, with the operator's reason; audited."""
    try:
        decision = ReviewDecision(decision)
    except ValueError:
        raise InvalidInput("The decision is credited or refused.", field="decision") from None
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidInput(f"Give a reason of 1 to {MAX_REASON} characters.", field="reason")
    now = now or utcnow()
    found = db.session.execute(select(Trip.rider_id, Trip.service_day).where(Trip.id == trip_pk)).first()
    if found is None:
        raise NotFound()
    rider_id, day = found
    if rider_id is not None:
        lock_riders("SELECT CAST(:rider AS integer)", {"rider": rider_id})
    status = db.session.scalar(select(Trip.status).where(Trip.id == trip_pk, Trip.service_day == day)
                               .with_for_update())
    if status != TripStatus.review:
        raise NotUnderReview()
    params = {"pk": trip_pk, "day": sql_param(day), "now": sql_param(now)}
    if decision == ReviewDecision.credited:
        db.session.execute(text(_dialect_sql(
            "WITH cand AS (SELECT t.id AS pk, t.rider_id, t.service_day, t.entered_at, t.exited_at, t.id AS ord, "
            "t.distance_m, t.rule_version_id, t.mode, t.steps, t.source, t.entry_station, t.exit_station "
            "FROM trips t WHERE t.id = :pk AND t.service_day = :day), " + allocate_cte(checks=False) +
            " UPDATE trips SET points = allocated.points, status = allocated.status, reason = '', "
            "co2e_grams = allocated.co2e_grams, credited_at = :now FROM allocated "
            "WHERE trips.id = allocated.pk AND trips.service_day = allocated.service_day")), params)
        post_trip_credits("SELECT CAST(:pk AS bigint)", now=now, params={"pk": trip_pk}, since_day=day)
        add_trips("SELECT CAST(:pk AS bigint)", {"pk": trip_pk})
    else:
        db.session.execute(text("UPDATE trips SET status = 'refused', reason = :reason WHERE id = :pk "
                                "AND service_day = :day"), {**params, "reason": HoldReason.refused_by_operator.value})
    record_trip_changes("SELECT CAST(:pk AS bigint)", {"pk": trip_pk})
    points = db.session.scalar(select(Trip.points).where(Trip.id == trip_pk, Trip.service_day == day))
    label = actor_label or (actor.email if actor else "cli")
    review = TripReview(trip_pk=trip_pk, service_day=day, decision=decision, reason=reason, points=points or 0,
                        decided_by_id=actor.id if actor else None, decided_by=label, decided_at=now)
    db.session.add(review)
    db.session.flush()
    record_audit(actor=actor, actor_label=label, action=f"trips.review_{decision.value}", subject=f"trip:{trip_pk}",
                 reason=reason)
    db.session.expire_all()
    return review
