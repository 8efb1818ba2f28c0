"""Settlement's panels on the marketplace's pages (core/panels.py): what the merchant owes — its open and overdue
statements, and this month's fees so far (used coupons × its fee plan) — and, for the back office, its receivables
and statements.

Reads are bounded: statements by merchant (the (merchant_id, period) unique index; a row a month), the newest
STATEMENTS_SHOWN of them listed; this month's and the window's used coupons through redemption's bounded daily count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from flask import render_template
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import and_, case, func, select

from metropoints.core.charts import line_chart
from metropoints.core.db import db
from metropoints.core.panels import DayWindow, add_panel
from metropoints.core.timeutil import service_day, utcnow
from metropoints.marketplace.models import Merchant
from metropoints.redemption.panels import used_per_day
from metropoints.settlement.models import Statement, StatementStatus
from metropoints.settlement.operations import fees_for
from metropoints.settlement.periods import period_label, period_of, period_start
from metropoints.settlement.queries import OWED
from metropoints.settlement.views import status_label

STATEMENTS_SHOWN = 24  # two years of months on the back office's merchant page


@dataclass(frozen=True)
class Owed:
    """A merchant's statements by where they stand, in fen, with counts."""

    open_fen: int  # owed, not yet due
    open_count: int
    overdue_fen: int
    overdue_count: int
    paid_fen: int
    paid_count: int

    @property
    def owed_fen(self) -> int:
        """Everything the merchant owes now, overdue or not."""
        return self.open_fen + self.overdue_fen


def owed_by(merchant_id: int, now: datetime | None = None) -> Owed:
    """Open (owed, not yet due), overdue and paid totals of one merchant, in one aggregate over its statements (as
    settlement.queries.receivables does for all)."""
    now = now or utcnow()
    owed = Statement.status.in_(OWED)
    overdue = and_(owed, Statement.due_at < now)
    open_ = and_(owed, ~overdue | Statement.due_at.is_(None))
    paid = Statement.status == StatementStatus.paid

    def total(condition):
        """SQL: the sum of the matching statements' totals."""
        return func.coalesce(func.sum(case((condition, Statement.total_fen), else_=0)), 0)

    def count(condition):
        """SQL: how many statements match."""
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = db.session.execute(select(total(open_), count(open_), total(overdue), count(overdue), total(paid),
                                    count(paid)).where(Statement.merchant_id == merchant_id)).one()
    return Owed(*(int(value) for value in row))


def newest_statements(merchant_id: int, limit: int = STATEMENTS_SHOWN) -> list[Statement]:
    """The merchant's newest statements, newest period first (at most `limit`)."""
    return list(db.session.scalars(select(Statement).where(Statement.merchant_id == merchant_id)
                                   .order_by(Statement.period.desc()).limit(limit)))


@dataclass(frozen=True)
class MonthSoFar:
    """This month's fees so far: its used coupons at the plan's fee each, and the plan's monthly fee."""

    period: date
    used: int
    fee_per_coupon_fen: int
    monthly_fee_fen: int

    @property
    def coupon_fees_fen(self) -> int:
        """The used coupons' fees."""
        return self.used * self.fee_per_coupon_fen

    @property
    def total_fen(self) -> int:
        """What this month's statement comes to if nothing more is used."""
        return self.coupon_fees_fen + self.monthly_fee_fen


def month_so_far(merchant_id: int, now: datetime | None = None) -> MonthSoFar:
    """The current month's fees so far, from its used coupons (a window from the 1st to today) × the plan."""
    now = now or utcnow()
    period = period_of(now)
    used = used_per_day(merchant_id, DayWindow(service_day(period_start(period)), service_day(now)))
    fees = fees_for(merchant_id, period)
    return MonthSoFar(period, sum(used.values()), fees.fee_per_coupon_fen, fees.monthly_fee_fen)


def fees_per_day(merchant_id: int, window: DayWindow) -> dict[date, int]:
    """Fees in fen for the coupons used on each day of the window, at the plan of that day's month."""
    used = used_per_day(merchant_id, window)
    plans = {period: fees_for(merchant_id, period).fee_per_coupon_fen for period in _periods(window.days)}
    return {day: count * plans[day.replace(day=1)] for day, count in used.items()}


def _periods(days: Iterable[date]) -> set[date]:
    """The months (their first days) the days fall in."""
    return {day.replace(day=1) for day in days}


def yuan_axis(fen: float) -> str:
    """An axis label for fen: whole yuan."""
    return f"¥{fen / 100:,.0f}"


def owner_dashboard_panel(*, merchant: Merchant, window: DayWindow, **_context) -> Markup:
    """Fees owed: open and overdue statements, this month's fees so far, and the fees per day over the window."""
    now = utcnow()
    chart = line_chart(window.points(fees_per_day(merchant.id, window)), title=_("Fees from used coupons per day"),
                       chart_id="owner-fees", empty_text=_("No fees in this period"), value_format=yuan_axis)
    return Markup(render_template("settlement/panels/fees.html", owed=owed_by(merchant.id, now),
                                  month=month_so_far(merchant.id, now), chart=chart, period_label=period_label))


def operator_merchant_panel(*, merchant: Merchant, **_context) -> Markup:
    """The merchant's receivables (open, overdue, paid) and its newest statements, each linking to its page."""
    now = utcnow()
    statements = newest_statements(merchant.id)
    return Markup(render_template("settlement/panels/receivables.html", owed=owed_by(merchant.id, now),
                                  month=month_so_far(merchant.id, now), statements=statements,
                                  more=len(statements) == STATEMENTS_SHOWN, status_label=status_label,
                                  period_label=period_label))


def register() -> None:
    """Put settlement's panels on the marketplace's pages (idempotent)."""
    add_panel("owner_dashboard", owner_dashboard_panel, order=20)
    add_panel("operator_merchant", operator_merchant_panel, order=20)
