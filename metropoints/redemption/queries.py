"""Read side of redemption: a rider's coupons, a store's validations today, the owner's activity over a period, and
the stores whose counter is refused for too many unknown codes.

Everything is counted by the database (GROUP BY); the activity page's figures come from the coupons' rollup (a row per
campaign and day), the store counts and the CSV from index ranges bounded by the period; the CSV's rows are streamed,
never loaded at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import and_, func, select, union

from metropoints.campaigns.models import Campaign
from metropoints.core.db import db
from metropoints.core.panels import DayWindow
from metropoints.core.timeutil import SERVICE_ZONE, isoformat, utcnow
from metropoints.marketplace.models import Store
from metropoints.redemption.counter import GUESS_LIMIT, GUESS_WINDOW, lock_until
from metropoints.redemption.models import Coupon, CouponDay, CouponStatus, UnknownCodeAttempt

CSV_HEADER = ("coupon_id", "campaign_id", "campaign_title", "status", "points_spent", "issued_at", "used_at",
              "used_store_id", "store_name")


def rider_coupons_query(rider_id: int, status: CouponStatus | None = None, now: datetime | None = None):
    """(Coupon, title) rows of a rider, unordered, optionally of one status as the rider sees it."""
    now = now or utcnow()
    query = (select(Coupon, Campaign.title).join(Campaign, Campaign.id == Coupon.campaign_id)
             .where(Coupon.rider_id == rider_id))
    if status == CouponStatus.issued:
        query = query.where(Coupon.status == CouponStatus.issued, Coupon.expires_at > now)
    elif status == CouponStatus.expired:
        query = query.where((Coupon.status == CouponStatus.expired)
                            | ((Coupon.status == CouponStatus.issued) & (Coupon.expires_at <= now)))
    elif status is not None:
        query = query.where(Coupon.status == status)
    return query


def todays_validations(store_id: int) -> list[tuple[datetime, str, int]]:
    """(used at, campaign title, coupon id) of today's validations at a store (Asia/Shanghai day), latest first."""
    start = datetime.combine(utcnow().astimezone(SERVICE_ZONE).date(), time(), tzinfo=SERVICE_ZONE)
    rows = db.session.execute(
        select(Coupon.used_at, Campaign.title, Coupon.id).join(Campaign, Campaign.id == Coupon.campaign_id)
        .where(Coupon.used_store_id == store_id, Coupon.used_at >= start).order_by(Coupon.used_at.desc())).all()
    return [(used_at, title, coupon_id) for used_at, title, coupon_id in rows]


def store_name(store_id: int) -> str:
    """A store's name ("" when there is no such store)."""
    store = db.session.get(Store, store_id)
    return store.name if store else ""


def campaign_activity(merchant_id: int, period: DayWindow) -> list:
    """Per campaign of the merchant: coupons bought, used, cancelled and expired on the period's days, and the points
    spent net of the refunds made on those days; from the coupons' rollup (a row per campaign and day), one query."""
    own = select(Campaign.id).where(Campaign.merchant_id == merchant_id)
    days = (
        select(CouponDay.campaign_id, func.sum(CouponDay.bought).label("issued"),
               func.sum(CouponDay.used).label("used"), func.sum(CouponDay.cancelled).label("cancelled"),
               func.sum(CouponDay.expired).label("expired"),
               func.sum(CouponDay.points_spent - CouponDay.points_refunded).label("points"))
        .where(CouponDay.campaign_id.in_(own), CouponDay.service_day >= period.first,
               CouponDay.service_day <= period.last)
        .group_by(CouponDay.campaign_id).subquery())
    query = (
        select(Campaign.id, Campaign.title, *(func.coalesce(days.c[name], 0).label(name)
                                              for name in ("issued", "used", "cancelled", "expired", "points")))
        .outerjoin(days, days.c.campaign_id == Campaign.id)
        .where(Campaign.merchant_id == merchant_id)
        .order_by(Campaign.id.desc())
    )
    return list(db.session.execute(query))


def store_activity(merchant_id: int, period: DayWindow) -> list:
    """Per store of the merchant: coupons used there in the period; one GROUP BY query."""
    query = (
        select(Store.id, Store.name, func.count(Coupon.id).label("validations"))
        .outerjoin(Coupon, and_(Coupon.used_store_id == Store.id, Coupon.status == CouponStatus.used,
                                period.holds(Coupon.used_at)))
        .where(Store.merchant_id == merchant_id)
        .group_by(Store.id, Store.name)
        .order_by(Store.name, Store.id)
    )
    return list(db.session.execute(query))


def coupon_rows(merchant_id: int, period: DayWindow) -> Iterator[tuple]:
    """One CSV row (as CSV_HEADER) per coupon of the merchant issued or used in the period, streamed."""
    query = (
        select(Coupon.id, Coupon.campaign_id, Campaign.title, Coupon.status, Coupon.points_spent, Coupon.issued_at,
               Coupon.used_at, Coupon.used_store_id, Store.name)
        .join(Campaign, Campaign.id == Coupon.campaign_id)
        .outerjoin(Store, Store.id == Coupon.used_store_id)
        .where(Coupon.id.in_(union(
            # Two index ranges, each bounded by the period: bought at the merchant's campaigns, used at its stores
            # (a coupon is used only at a store of its own merchant).
            select(Coupon.id).join(Campaign, Campaign.id == Coupon.campaign_id)
            .where(Campaign.merchant_id == merchant_id, period.holds(Coupon.issued_at)),
            select(Coupon.id).join(Store, Store.id == Coupon.used_store_id)
            .where(Store.merchant_id == merchant_id, period.holds(Coupon.used_at)))))
        .order_by(Coupon.id)
        .execution_options(yield_per=500)
    )
    for (coupon_id, campaign_id, title, status, points, issued_at, used_at, store_id,
         name) in db.session.execute(query):
        yield (coupon_id, campaign_id, title, status.value, points, isoformat(issued_at) or "",
               isoformat(used_at) or "", store_id if store_id is not None else "", name or "")


@dataclass(frozen=True)
class CounterLock:
    """A store whose counter is refused for now: how many unknown codes it was sent within the guess window, and
    until when it is refused."""

    store_id: int
    store_name: str
    attempts: int
    until: datetime

    @property
    def minutes(self) -> int:
        """The guess window the attempts were counted in, in minutes."""
        return GUESS_WINDOW.seconds // 60


def active_counter_locks(*, merchant_id: int, now: datetime | None = None,
                         store_id: int | None = None) -> list[CounterLock]:
    """The merchant's stores (or the one store) whose counter is refused at `now` for too many unknown codes, by
    store name; one query, reading no more than a handful of rows per store (older tries are deleted as new come)."""
    now = now or utcnow()
    since = now - GUESS_WINDOW
    tries = and_(UnknownCodeAttempt.store_id == Store.id, UnknownCodeAttempt.at > since)
    attempts = select(func.count()).select_from(UnknownCodeAttempt).where(tries).scalar_subquery()
    locked_from = (select(UnknownCodeAttempt.at).where(tries).order_by(UnknownCodeAttempt.at.desc())
                   .offset(GUESS_LIMIT - 1).limit(1).scalar_subquery())
    query = (select(Store.id, Store.name, attempts.label("attempts"), locked_from.label("locked_from"))
             .where(Store.merchant_id == merchant_id).order_by(Store.name, Store.id))
    if store_id is not None:
        query = query.where(Store.id == store_id)
    return [CounterLock(store_id=row.id, store_name=row.name, attempts=row.attempts, until=lock_until(row.locked_from))
            for row in db.session.execute(query) if row.locked_from is not None]
