"""The dashboards' reads are bounded by their window: coupons are read through the (campaign_id, issued_at) and
(used_store_id, used_at) indexes over the window's range, never by a scan of every coupon ever bought."""

from __future__ import annotations

from sqlalchemy import event, text

from metropoints.core.db import db
from metropoints.core.panels import day_window
from metropoints.redemption.models import CouponStatus
from metropoints.redemption.panels import coupon_figures


def plans_of(call) -> dict[str, str]:
    """Run `call`, then EXPLAIN each coupons query it sent (sequential scans off, so the plan shows which index can
    serve it, whatever the table's size); {SQL: plan}."""
    sent = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:
        """Keep each statement on the coupons table."""
        if "FROM coupons" in statement:
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    plans = {}
    connection = db.session.connection()
    connection.execute(text("SET LOCAL enable_seqscan = off"))
    for statement, parameters in sent:
        rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
        plans[statement] = "\n".join(row[0] for row in rows)
    db.session.rollback()
    return plans


def test_coupon_figures_read_the_window_through_indexes(app, create_shop, create_campaign_row, create_coupon):
    """Bought per day reads ix_coupons_campaign_issued with the window's range on issued_at; used per day reads
    ix_coupons_used_store with the range on used_at: two index range reads, no full scan of coupons."""
    shop = create_shop()
    campaign = create_campaign_row(shop)
    create_coupon(campaign, status=CouponStatus.used, store=shop.store)
    create_coupon(campaign, days_ago=200)
    plans = plans_of(lambda: coupon_figures(shop.merchant.id, day_window(90)))
    assert len(plans) == 2
    bought = next(plan for sql, plan in plans.items() if "campaign_id IN" in sql)
    used = next(plan for sql, plan in plans.items() if "used_store_id IN" in sql)
    assert "ix_coupons_campaign_issued" in bought and "issued_at >=" in bought
    assert "ix_coupons_used_store" in used and "used_at >=" in used
    assert all("Seq Scan on coupons" not in plan for plan in plans.values())


def test_figures_ignore_coupons_outside_the_window(app, create_shop, create_campaign_row, create_coupon):
    """A coupon bought before the window, or bought in it but used before it, counts nowhere in the window's
    figures; one bought on the window's first day counts."""
    shop = create_shop()
    campaign = create_campaign_row(shop)
    create_coupon(campaign, days_ago=30, status=CouponStatus.used, store=shop.store, used_days_ago=30)
    create_coupon(campaign, days_ago=29, points=40)
    create_coupon(campaign, days_ago=29, status=CouponStatus.cancelled, points=60)
    figures = coupon_figures(shop.merchant.id, day_window(30))
    assert (figures.total("bought"), figures.total("used"), figures.total("points"), figures.total("cancelled")) == (
        2, 0, 40, 1)
