"""The statements of a sale (redemption.operations.redeem), in the order it sends them, with the lock order each
keeps: the rider's row first (the terms), the campaign's stock row last (the sale), then the campaign's day row
(redemption.rollups). Sent on the session's connection as they are on PostgreSQL (core.db.hot_row): a sale builds
no ORM object and compiles nothing.
"""

from __future__ import annotations

from sqlalchemy import text

from metropoints.core.db import driver_sql
from metropoints.redemption import rollups

# The campaign first: in a flash sale most requests come after the stock is gone, and those take no lock at all. Only
# a campaign that looks sellable locks the rider's row (so their limit and balance checks cannot race), in the same
# round trip. The lock waits for the rider's other purchases to commit and returns the balance as they left it.
SALE_TERMS_SQL = """
WITH campaign AS (
    SELECT c.point_price, c.per_rider_limit, c.coupon_valid_days, c.stock_left,
           c.status = 'approved' AND c.valid_from <= :now AND c.valid_until > :now AND m.status = 'approved'
               AS on_sale
    FROM campaigns c JOIN merchants m ON m.id = c.merchant_id
    WHERE c.id = :c),
rider AS (
    SELECT points_balance FROM riders
    WHERE id = :r AND EXISTS (SELECT 1 FROM campaign WHERE on_sale AND stock_left > 0){lock})
SELECT campaign.point_price, campaign.per_rider_limit, campaign.coupon_valid_days, campaign.stock_left,
       campaign.on_sale, (SELECT points_balance FROM rider)
FROM campaign
"""
SALE_TERMS = {"postgresql": text(SALE_TERMS_SQL.format(lock=" FOR UPDATE")),
               "sqlite": text(SALE_TERMS_SQL.format(lock=""))}  # SQLite has one writer: no lock needed


# Stock last: the rider is locked already, so the only lock this statement waits for is the campaign's stock row.
# It runs after the rider's lock was granted, so `held` counts every coupon the rider's earlier purchases committed;
# over the limit or short of points, nothing is taken and the caller says why. A counter code an issued coupon
# already carries inserts no coupon and no entry, while stock and points are taken: the caller finishes the purchase.
REDEEM = text("""
WITH held AS (
    SELECT count(*) AS n FROM coupons WHERE campaign_id = :c AND rider_id = :r AND status <> 'cancelled'),
stock AS (
    UPDATE campaigns SET stock_left = stock_left - 1
    WHERE id = :c AND stock_left > 0 AND status = 'approved' AND valid_from <= :now AND valid_until > :now
        AND (SELECT n FROM held) < :limit AND :balance >= :price
    RETURNING id, stock_left),
debit AS (
    UPDATE riders SET points_balance = points_balance - :price
    WHERE id = :r AND points_balance >= :price AND EXISTS (SELECT 1 FROM stock)
    RETURNING points_balance),
coupon AS (
    INSERT INTO coupons (campaign_id, rider_id, code, counter_code, status, points_spent, issued_at, expires_at)
    SELECT :c, :r, :code, :counter_code, 'issued', :price, :now, :expires FROM debit
    ON CONFLICT (counter_code) WHERE status = 'issued' DO NOTHING
    RETURNING id),
entry AS (
    INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after)
    SELECT :r, :now, :day, -:price, 'redemption', 'coupon:' || coupon.id::text, '', '', debit.points_balance
    FROM coupon, debit
    RETURNING id),
""" + rollups.BOUGHT_CTE + """
SELECT (SELECT n FROM held), (SELECT id FROM stock), (SELECT id FROM coupon), (SELECT points_balance FROM debit),
       (SELECT stock_left FROM stock)
""")
HELD = text("SELECT count(*) FROM coupons WHERE campaign_id = :c AND rider_id = :r AND status <> 'cancelled'")


REDEMPTION_ENTRY = text("""
INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after)
VALUES (:r, :now, :day, -:price, 'redemption', :ref, '', '', :balance)
""")
# PostgreSQL's forms, sent as they are (core.db.hot_row).
SALE_TERMS_PG = driver_sql(SALE_TERMS["postgresql"].text)
REDEEM_PG = driver_sql(REDEEM.text)
