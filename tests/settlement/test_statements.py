"""Monthly statements: fee plans from the next period, a line per used coupon, every used coupon on exactly one
statement, runs that change nothing the second time, and integer fen throughout."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import SERVICE_ZONE
from metropoints.redemption import operations as redemption
from metropoints.redemption.models import Coupon, CouponStatus
from metropoints.settlement import operations, periods
from metropoints.settlement.errors import InvalidFee, InvalidPeriod, PeriodNotEnded, PeriodSuperseded
from metropoints.settlement.models import StatementLine, StatementStatus
from tests.helpers import run_at_once
from tests.settlement.conftest import AFTER_OCTOBER, PERIOD, statements


def test_periods_are_shanghai_months():
    """A period is a month in Asia/Shanghai; YYYY-MM only."""
    assert periods.parse_period("2026-10") == PERIOD
    for bad in ("2026-13", "2026-1", "26-10", "", None, 202610, "2026-10-01", "1999-12"):
        with pytest.raises(InvalidPeriod):
            periods.parse_period(bad)
    assert periods.next_period(date(2026, 12, 1)) == date(2027, 1, 1)
    assert periods.previous_period(datetime(2027, 1, 1, 0, 5, tzinfo=SERVICE_ZONE)) == date(2026, 12, 1)
    assert periods.previous_period(datetime(2026, 12, 31, 23, 59, tzinfo=SERVICE_ZONE)) == date(2026, 11, 1)
    assert periods.period_start(PERIOD).isoformat() == "2026-09-30T16:00:00+00:00"


def test_fee_plans_apply_from_the_next_period(app, create_shop):
    """The default fee until a plan is set; a plan set in October applies from November; the last one set in a
    month wins; fees are whole non-negative fen."""
    shop = create_shop()
    assert operations.fees_for(shop.merchant.id, PERIOD) == operations.Fees(200, 0)
    october_day = datetime(2026, 10, 15, tzinfo=SERVICE_ZONE)
    operations.set_fee_plan(merchant_id=shop.merchant.id, fee_per_coupon_fen=300, monthly_fee_fen=5000, actor=None,
                            now=october_day)
    operations.set_fee_plan(merchant_id=shop.merchant.id, fee_per_coupon_fen=350, monthly_fee_fen=0, actor=None,
                            now=october_day)
    commit_unit_of_work()
    assert operations.fees_for(shop.merchant.id, PERIOD) == operations.Fees(200, 0)
    assert operations.fees_for(shop.merchant.id, date(2026, 11, 1)) == operations.Fees(350, 0)
    assert operations.fees_for(shop.merchant.id, date(2027, 3, 1)) == operations.Fees(350, 0)
    for bad in (-1, 1.5, "200", None, True, 10_000_001):
        with pytest.raises(InvalidFee):
            operations.set_fee_plan(merchant_id=shop.merchant.id, fee_per_coupon_fen=bad, monthly_fee_fen=0,
                                    actor=None)


def test_a_month_makes_one_statement_per_merchant_with_a_line_per_used_coupon(app, create_shop, month_of_coupons):
    """Used coupons are billed at the fee; cancelled, expired and unused ones never; a quiet merchant gets none."""
    shop, other, quiet = create_shop(), create_shop(), create_shop()
    used = month_of_coupons(shop, 4, campaigns=2)
    other_used = month_of_coupons(other, 1)
    operations.set_fee_plan(merchant_id=other.merchant.id, fee_per_coupon_fen=150, monthly_fee_fen=10_000,
                            actor=None, now=datetime(2026, 9, 20, tzinfo=SERVICE_ZONE))
    commit_unit_of_work()
    result = operations.run_period(PERIOD, now=AFTER_OCTOBER)
    commit_unit_of_work()
    assert len(result.created) == 2 and result.existing == 0
    mine, theirs = statements()
    assert (mine.merchant_id, mine.coupon_count, mine.fee_per_coupon_fen, mine.coupon_fees_fen, mine.monthly_fee_fen,
            mine.total_fen, mine.currency) == (shop.merchant.id, 4, 200, 800, 0, 800, "cny")
    assert (theirs.coupon_count, theirs.coupon_fees_fen, theirs.monthly_fee_fen, theirs.total_fen) == \
        (1, 150, 10_000, 10_150)
    lines = db.session.scalars(select(StatementLine).where(StatementLine.statement_id == mine.id)).all()
    assert sorted(line.coupon_id for line in lines) == sorted(used)
    assert all(type(line.fee_fen) is int and line.fee_fen == 200 for line in lines)
    billed = set(db.session.scalars(select(StatementLine.coupon_id)))
    unbilled = db.session.scalars(select(Coupon).where(Coupon.id.not_in(billed))).all()
    assert {c.status for c in unbilled} == {CouponStatus.cancelled, CouponStatus.expired, CouponStatus.issued}
    assert billed == set(used) | set(other_used)
    assert set(db.session.scalars(select(Coupon.id).where(Coupon.billed))) == billed  # what the next run skips
    assert quiet.merchant.id not in {s.merchant_id for s in statements()}
    # No provider in these tests: invoicing was tried, recorded, and waits (pending) for a retry.
    assert mine.status == StatementStatus.pending and mine.invoice_attempts == 1
    assert "ConnectionError" in mine.last_error


def test_coupons_bought_but_none_used_make_a_statement_with_nothing_due(app, create_shop, month_of_coupons):
    """Activity without a used coupon (coupons bought, then cancelled, expired or still unused): a statement of
    0 fen, nothing_due, never invoiced."""
    shop = create_shop()
    month_of_coupons(shop, 0)
    operations.run_period(PERIOD, now=AFTER_OCTOBER)
    commit_unit_of_work()
    (statement,) = statements()
    assert (statement.merchant_id, statement.coupon_count, statement.total_fen, statement.status,
            statement.invoice_attempts) == (shop.merchant.id, 0, 0, StatementStatus.nothing_due, 0)


def test_running_a_period_twice_changes_nothing(app, create_shop, month_of_coupons):
    shop = create_shop()
    month_of_coupons(shop, 2)
    operations.run_period(PERIOD, now=AFTER_OCTOBER)
    commit_unit_of_work()
    before = [(s.id, s.total_fen, s.coupon_count) for s in statements()]
    again = operations.run_period(PERIOD, now=AFTER_OCTOBER)
    commit_unit_of_work()
    assert again.created == [] and again.existing == 1
    assert [(s.id, s.total_fen, s.coupon_count) for s in statements()] == before
    assert db.session.scalar(select(func.count(StatementLine.id))) == 2


def test_a_use_arriving_after_the_run_lands_on_the_next_statement(app, create_shop, month_of_coupons,
                                                                  create_riders):
    """A coupon used on 31 October whose use reached us after October's run is billed in November, once."""
    shop = create_shop()
    month_of_coupons(shop, 2)
    rider = create_riders(1, points=1000)[0]
    campaign_id = db.session.scalar(select(Coupon.campaign_id))
    late = redemption.redeem(rider_id=rider.id, campaign_id=campaign_id, now=datetime(2026, 10, 31, 20, 0,
                                                                                      tzinfo=SERVICE_ZONE))
    commit_unit_of_work()
    operations.run_period(PERIOD, now=AFTER_OCTOBER)
    commit_unit_of_work()
    redemption.validate(cashier=shop.cashier, code=late.code, now=datetime(2026, 10, 31, 23, 59, 59,
                                                                           tzinfo=SERVICE_ZONE))
    commit_unit_of_work()
    operations.run_period(PERIOD, now=AFTER_OCTOBER)  # changes nothing: October is done
    operations.run_period(date(2026, 11, 1), now=datetime(2026, 12, 1, 9, 0, tzinfo=SERVICE_ZONE))
    commit_unit_of_work()
    october, november = statements()
    assert (october.coupon_count, november.coupon_count) == (2, 1)
    assert db.session.scalar(select(StatementLine.statement_id).where(StatementLine.coupon_id == late.coupon_id)) \
        == november.id
    used = db.session.scalar(select(func.count(Coupon.id)).where(Coupon.status == CouponStatus.used))
    assert db.session.scalar(select(func.count(func.distinct(StatementLine.coupon_id)))) == used == 3


def test_only_ended_months_and_never_behind_a_later_run(app, create_shop, month_of_coupons):
    shop = create_shop()
    month_of_coupons(shop, 1)
    with pytest.raises(PeriodNotEnded):
        operations.run_period(PERIOD, now=datetime(2026, 10, 31, 23, 59, tzinfo=SERVICE_ZONE))
    operations.run_period(date(2026, 11, 1), now=datetime(2026, 12, 1, 9, 0, tzinfo=SERVICE_ZONE))
    commit_unit_of_work()
    with pytest.raises(PeriodSuperseded):
        operations.run_period(PERIOD, now=AFTER_OCTOBER)


def test_monthly_fee_alone_makes_a_statement_and_nothing_due_makes_no_invoice(app, create_shop, month_of_coupons):
    """An approved merchant with a listing fee is billed it without activity; a free plan owes nothing."""
    listed, free = create_shop(), create_shop()
    month_of_coupons(free, 2)
    september = datetime(2026, 9, 10, tzinfo=SERVICE_ZONE)
    operations.set_fee_plan(merchant_id=listed.merchant.id, fee_per_coupon_fen=100, monthly_fee_fen=3000,
                            actor=None, now=september)
    operations.set_fee_plan(merchant_id=free.merchant.id, fee_per_coupon_fen=0, monthly_fee_fen=0, actor=None,
                            now=september)
    commit_unit_of_work()
    operations.run_period(PERIOD, now=AFTER_OCTOBER)
    commit_unit_of_work()
    by_merchant = {s.merchant_id: s for s in statements()}
    assert by_merchant[listed.merchant.id].total_fen == 3000
    assert by_merchant[free.merchant.id].status == StatementStatus.nothing_due
    assert by_merchant[free.merchant.id].invoice_attempts == 0


def test_concurrent_runs_bill_each_coupon_once(app, create_shop, month_of_coupons):
    """Two runs of the same month at once: one makes the statements, the other finds them made."""
    shops = [create_shop() for _ in range(3)]
    for shop in shops:
        month_of_coupons(shop, 2)

    def run() -> list[int]:
        result = operations.run_period(PERIOD, now=AFTER_OCTOBER)
        commit_unit_of_work()
        return result.created

    results = run_at_once(app, [run, run])
    assert sorted(len(created) for created in results) == [0, 3]
    assert db.session.scalar(select(func.count(StatementLine.id))) == 6 == \
        db.session.scalar(select(func.count(func.distinct(StatementLine.coupon_id))))


def test_cli_run_and_fee_plan(app, runner, create_shop, month_of_coupons):
    shop = create_shop()
    month_of_coupons(shop, 2)
    result = runner.invoke(args=["settlement", "fee-plan", str(shop.merchant.id), "--per-coupon-fen", "250",
                                 "--monthly-fen", "1000"])
    assert result.exit_code == 0, result.output
    assert "250 fen per used coupon" in result.output
    result = runner.invoke(args=["settlement", "run", "--period", "2026-10"])
    assert result.exit_code == 0, result.output
    assert "2026-10: 1 statements made, 0 existed already" in result.output
    assert runner.invoke(args=["settlement", "run", "--period", "2026-10"]).output.endswith(
        "0 statements made, 1 existed already\n")
    bad = runner.invoke(args=["settlement", "run", "--period", "October"])
    assert bad.exit_code != 0 and "invalid_period" in bad.output
    future = runner.invoke(args=["settlement", "run", "--period", "2099-01"])
    assert future.exit_code != 0 and "period_not_ended" in future.output
    negative = runner.invoke(args=["settlement", "fee-plan", str(shop.merchant.id), "--per-coupon-fen", "-5"])
    assert negative.exit_code != 0 and "invalid_fee" in negative.output
