"""The owner's activity page: per campaign, coupons issued (redemptions), used, cancelled and expired and the
points spent; per store, validations; over a period of Asia/Shanghai days, and the coupons behind them as CSV.

Everything is counted by the database (GROUP BY), and the CSV is streamed row by row."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import Blueprint, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import and_, case, func, or_, select

from metropoints.campaigns.models import Campaign, Coupon, CouponStatus
from metropoints.core.csvexport import csv_download
from metropoints.core.db import db
from metropoints.core.models import Role
from metropoints.core.portal import add_nav, role_required
from metropoints.core.timeutil import SERVICE_ZONE, isoformat, utcnow
from metropoints.marketplace.models import Store
from metropoints.marketplace.queries import portal_membership

bp = Blueprint("activity", __name__, url_prefix="/portal/activity")
owner_only = role_required(Role.merchant_owner)
add_nav("activity.page", _l("Activity"), Role.merchant_owner, order=30)

DEFAULT_DAYS = 30
MAX_DAYS = 366
CSV_HEADER = ("coupon_id", "campaign_id", "campaign_title", "status", "points_spent", "issued_at", "used_at",
              "used_store_id", "store_name")


@dataclass(frozen=True)
class Period:
    """Asia/Shanghai days `first`..`last` (inclusive), as the UTC-aware half-open range [start, end)."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), tzinfo=SERVICE_ZONE)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=SERVICE_ZONE)

    def holds(self, column):
        """SQL: the column's moment lies in the period."""
        return and_(column >= self.start, column < self.end)


def _period() -> tuple[Period, str | None, dict[str, str]]:
    """The period asked for (`from`, `to` as YYYY-MM-DD; the last 30 days by default), an error message when the
    dates are invalid (the default period is returned with it), and the raw values for the form."""
    today = utcnow().astimezone(SERVICE_ZONE).date()
    default = Period(today - timedelta(days=DEFAULT_DAYS - 1), today)
    raw = {"from": request.args.get("from", "").strip(), "to": request.args.get("to", "").strip()}
    try:
        first = date.fromisoformat(raw["from"]) if raw["from"] else default.first
        last = date.fromisoformat(raw["to"]) if raw["to"] else default.last
    except ValueError:
        return default, _("Dates must be given as YYYY-MM-DD."), raw
    if last < first:
        return default, _("The end date must not be before the start date."), raw
    if (last - first).days >= MAX_DAYS:
        return default, _("The period may span at most %(days)d days.", days=MAX_DAYS), raw
    return Period(first, last), None, raw


def _count(condition):
    """SQL: how many joined coupons meet the condition (0 when none)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def campaign_activity(merchant_id: int, period: Period) -> list:
    """Per campaign of the merchant: issued, used, cancelled, expired in the period, and points spent on the
    period's non-cancelled redemptions; one GROUP BY query."""
    issued = period.holds(Coupon.issued_at)
    query = (
        select(Campaign.id, Campaign.title,
               _count(issued).label("issued"),
               _count(and_(Coupon.status == CouponStatus.used, period.holds(Coupon.used_at))).label("used"),
               _count(and_(Coupon.status == CouponStatus.cancelled,
                           period.holds(Coupon.cancelled_at))).label("cancelled"),
               _count(and_(Coupon.status == CouponStatus.expired, period.holds(Coupon.expired_at))).label("expired"),
               func.coalesce(func.sum(case((and_(issued, Coupon.status != CouponStatus.cancelled),
                                            Coupon.points_spent), else_=0)), 0).label("points"))
        .outerjoin(Coupon, Coupon.campaign_id == Campaign.id)
        .where(Campaign.merchant_id == merchant_id)
        .group_by(Campaign.id, Campaign.title)
        .order_by(Campaign.id.desc())
    )
    return list(db.session.execute(query))


def store_activity(merchant_id: int, period: Period) -> list:
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


def _coupon_rows(merchant_id: int, period: Period) -> Iterator[tuple]:
    """One CSV row per coupon of the merchant issued or used in the period."""
    query = (
        select(Coupon.id, Coupon.campaign_id, Campaign.title, Coupon.status, Coupon.points_spent, Coupon.issued_at,
               Coupon.used_at, Coupon.used_store_id, Store.name)
        .join(Campaign, Campaign.id == Coupon.campaign_id)
        .outerjoin(Store, Store.id == Coupon.used_store_id)
        .where(Campaign.merchant_id == merchant_id,
               or_(period.holds(Coupon.issued_at), period.holds(Coupon.used_at)))
        .order_by(Coupon.id)
        .execution_options(yield_per=500)
    )
    for (coupon_id, campaign_id, title, status, points, issued_at, used_at, store_id,
         store_name) in db.session.execute(query):
        yield (coupon_id, campaign_id, title, status.value, points, isoformat(issued_at) or "",
               isoformat(used_at) or "", store_id if store_id is not None else "", store_name or "")


def _render(merchant_id: int, period: Period, error: str | None, raw: dict[str, str]):
    """The page; 422 with the form error when the dates were invalid."""
    if error:
        return render_template("campaigns/activity.html", error=error, form=raw, period=None, campaigns=[],
                               stores=[]), 422
    return render_template("campaigns/activity.html", error=None, period=period,
                           form={"from": period.first.isoformat(), "to": period.last.isoformat()},
                           campaigns=campaign_activity(merchant_id, period),
                           stores=store_activity(merchant_id, period))


@bp.get("")
@owner_only
def page():
    """The activity tables for a period."""
    member = portal_membership(current_user, owner=True)
    period, error, raw = _period()
    return _render(member.merchant_id, period, error, raw)


@owner_only
def export():
    """The coupons of the period as a streamed CSV download."""
    member = portal_membership(current_user, owner=True)
    period, error, raw = _period()
    if error:
        return _render(member.merchant_id, period, error, raw)
    filename = f"activity-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return csv_download(filename, CSV_HEADER, _coupon_rows(member.merchant_id, period))


@bp.record_once
def _register_csv_route(state) -> None:
    """The CSV sits beside the page (/portal/activity.csv), which a blueprint rule, always below its prefix,
    cannot express: the app gets the rule, under the blueprint's endpoint name."""
    state.app.add_url_rule(f"{state.url_prefix or bp.url_prefix}.csv", endpoint=f"{bp.name}.export",
                           view_func=export, methods=["GET"])
