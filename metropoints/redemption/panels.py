"""Redemption's panels on the marketplace's pages (core/panels.py): the merchant's coupons over the page's window —
bought, used at its stores, and the points riders spent on them net of cancellations — each with a daily chart; and
the stores whose counter is locked now (queries.active_counter_locks).

Both reads are bounded by the window through an index: bought by (campaign_id, issued_at) over the merchant's
campaigns, used by (used_store_id, used_at) over its stores; the database groups them by service day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask import render_template
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import case, func, select

from metropoints.campaigns.models import Campaign
from metropoints.core.charts import line_chart
from metropoints.core.db import db
from metropoints.core.panels import DayWindow, add_panel, per_day, service_date
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Merchant, Store
from metropoints.redemption.models import Coupon, CouponStatus
from metropoints.redemption.queries import CounterLock, active_counter_locks


@dataclass(frozen=True)
class CouponFigures:
    """A merchant's coupons per service day of a window (days without any are absent)."""

    window: DayWindow
    bought: dict[date, int]  # coupons issued (bought with points) per day, cancelled ones included
    points: dict[date, int]  # points spent on the day's coupons that were not cancelled
    cancelled: dict[date, int]  # of the day's coupons, those cancelled since (their points went back)
    used: dict[date, int]  # coupons used at the merchant's stores per day

    def total(self, name: str) -> int:
        """One figure summed over the window."""
        return sum(getattr(self, name).values())


def bought_per_day(merchant_id: int, window: DayWindow) -> tuple[dict[date, int], dict[date, int], dict[date, int]]:
    """(bought, net points, cancelled) per day for coupons of the merchant's campaigns issued in the window; one
    GROUP BY over the (campaign_id, issued_at) index's range."""
    day = service_date(Coupon.issued_at).label("day")
    kept = Coupon.status != CouponStatus.cancelled
    rows = db.session.execute(
        select(day, func.count(Coupon.id),
               func.coalesce(func.sum(case((kept, Coupon.points_spent), else_=0)), 0),
               func.coalesce(func.sum(case((kept, 0), else_=1)), 0))
        .where(Coupon.campaign_id.in_(select(Campaign.id).where(Campaign.merchant_id == merchant_id)),
               window.holds(Coupon.issued_at))
        .group_by(day)).all()
    return (per_day((d, n) for d, n, _p, _c in rows), per_day((d, p) for d, _n, p, _c in rows),
            per_day((d, c) for d, _n, _p, c in rows))


def used_per_day(merchant_id: int, window: DayWindow) -> dict[date, int]:
    """Coupons used at the merchant's stores per day of the window; one GROUP BY over the (used_store_id, used_at)
    index's range. Settlement's fee panel counts its fees from these too."""
    day = service_date(Coupon.used_at).label("day")
    return per_day(db.session.execute(
        select(day, func.count(Coupon.id))
        .where(Coupon.used_store_id.in_(select(Store.id).where(Store.merchant_id == merchant_id)),
               window.holds(Coupon.used_at), Coupon.status == CouponStatus.used)
        .group_by(day)))


def coupon_figures(merchant_id: int, window: DayWindow) -> CouponFigures:
    """The merchant's coupon figures over the window (two bounded queries)."""
    bought, points, cancelled = bought_per_day(merchant_id, window)
    return CouponFigures(window, bought, points, cancelled, used_per_day(merchant_id, window))


def counter_locks(merchant_id: int, now: datetime) -> list[CounterLock]:
    """The merchant's stores whose counter is locked now (after 10 unknown codes), from the counter's own query."""
    return active_counter_locks(merchant_id=merchant_id, now=now)


def _cards(figures: CouponFigures, prefix: str, *, owner: bool) -> list[dict]:
    """The panel's figures, each with its chart over the window; worded for the owner or for the back office."""
    window, no_data = figures.window, _("No coupons in this period")

    def chart(key: str, title: str, series: dict[date, int]) -> Markup:
        """A daily chart of one figure."""
        return line_chart(window.points(series), title=title, chart_id=f"{prefix}-{key}", empty_text=no_data)

    return [
        {"key": "bought", "label": _("Coupons bought"), "figure": figures.total("bought"),
         "note": _("%(n)s of them cancelled since", n=f"{figures.total('cancelled'):,}"),
         "chart": chart("bought", _("Coupons bought per day"), figures.bought)},
        {"key": "used", "label": _("Coupons used"), "figure": figures.total("used"),
         "note": _("checked at your stores' counters") if owner else _("checked at its stores' counters"),
         "chart": chart("used", _("Coupons used per day"), figures.used)},
        {"key": "points", "label": _("Points taken"), "figure": figures.total("points"),
         "note": (_("points riders spent on your coupons, net of cancellations") if owner
                  else _("points riders spent on its coupons, net of cancellations")),
         "chart": chart("points", _("Points taken per day"), figures.points)},
    ]


def owner_dashboard_panel(*, merchant: Merchant, window: DayWindow, **_context) -> Markup:
    """The owner's coupons over the dashboard's window, and the stores whose counter is locked."""
    cards = _cards(coupon_figures(merchant.id, window), "owner-coupons", owner=True)
    return Markup(render_template("redemption/panels/coupons.html", cards=cards, window=window,
                                  locks=counter_locks(merchant.id, utcnow()), owner=True))


def operator_merchant_panel(*, merchant: Merchant, window: DayWindow, **_context) -> Markup:
    """The merchant's coupon figures for the back office."""
    cards = _cards(coupon_figures(merchant.id, window), "merchant-coupons", owner=False)
    return Markup(render_template("redemption/panels/coupons.html", cards=cards, window=window,
                                  locks=counter_locks(merchant.id, utcnow()), owner=False))


def register() -> None:
    """Put redemption's panels on the marketplace's pages (idempotent)."""
    add_panel("owner_dashboard", owner_dashboard_panel, order=10)
    add_panel("operator_merchant", operator_merchant_panel, order=30)
