"""The coupons' rollup (`rollup_coupon_days`): per campaign and service day, coupons bought (and the points paid),
used, cancelled (and the points refunded) and expired, each counted on the day of its event by the transaction that
makes it.

Lock order: a redemption locks the rider, then the campaign's stock row, then this campaign's day row, in one
statement; a cancel locks the coupon, the rider, the stock row, then the day row; a use locks the coupon, then the
day row; the expiry job locks the coupons it expires, then the day rows in campaign order. The day row always comes
last, so these never wait on each other in a circle, and sales of different campaigns never share a row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from metropoints.core.db import db, is_postgres, sql_param
from metropoints.core.rollups import upsert_sql
from metropoints.core.timeutil import service_day

TABLE = "rollup_coupon_days"
KEYS = ("campaign_id", "service_day")
COUNTERS = ("bought", "points_spent", "used", "cancelled", "points_refunded", "expired")


def count_sql(select_sql: str) -> str:
    """The upsert adding `select_sql`'s rows (campaign_id, service_day, then COUNTERS) to the rollup."""
    return upsert_sql(TABLE, KEYS, COUNTERS, select_sql)


# A CTE of redemption.sale_sql.REDEEM: the coupon just issued (CTE `coupon`) counts as bought today.
BOUGHT_CTE = "tally AS (" + count_sql("SELECT :c, :day, 1, :price, 0, 0, 0, 0 FROM coupon WHERE 1 = 1") + ")"

_ADD = text(count_sql("SELECT :c, :day, :bought, :points_spent, :used, :cancelled, :points_refunded, :expired "
                      "WHERE 1 = 1"))
_USED = text(count_sql("SELECT campaign_id, :day, 0, 0, 1, 0, 0, 0 FROM coupons WHERE id = :coupon"))


def use_counted_sql(update_sql: str) -> str:
    """A coupon's use (an UPDATE ... RETURNING rider_name, campaign_id) that also counts it on its campaign's day row
    (`:day`), in one statement; it returns the rider's name, or no row when the use was refused."""
    return (f"WITH used AS ({update_sql}), "
            f"tally AS ({count_sql('SELECT u.campaign_id, :day, 0, 0, 1, 0, 0, 0 FROM used u WHERE 1 = 1')}) "
            "SELECT rider_name FROM used")


def count_event(*, campaign_id: int, at: datetime, bought: int = 0, points_spent: int = 0, cancelled: int = 0,
                points_refunded: int = 0) -> None:
    """Add a purchase or a cancel of one of a campaign's coupons, at `at`, to its day's row."""
    db.session.execute(_ADD, {"c": campaign_id, "day": sql_param(service_day(at)), "bought": bought,
                              "points_spent": points_spent, "used": 0, "cancelled": cancelled,
                              "points_refunded": points_refunded, "expired": 0})


def count_use(*, coupon_id: int, at: datetime) -> None:
    """Add a coupon just used, at `at`, to its campaign's day row."""
    db.session.execute(_USED, {"coupon": coupon_id, "day": sql_param(service_day(at))})


def expire_counted(where_sql: str, params: dict, at: datetime) -> int:
    """Expire the issued coupons matching `where_sql` (at `at`) and count them per campaign on that day; returns how
    many expired. On PostgreSQL one statement (the count sees exactly the rows the UPDATE changed); SQLite has one
    writer at a time, so counting first and then updating the same rows is as exact."""
    params = {**params, "now": sql_param(at), "day": sql_param(service_day(at))}
    update_sql = f"UPDATE coupons SET status = 'expired', expired_at = :now WHERE {where_sql}"
    tally = ("SELECT e.campaign_id, :day, 0, 0, 0, 0, 0, COUNT(*) FROM {source} e WHERE 1 = 1 "
             "GROUP BY e.campaign_id ORDER BY e.campaign_id")
    if is_postgres():
        return db.session.execute(text(
            f"WITH expired AS ({update_sql} RETURNING campaign_id), "
            f"tally AS ({count_sql(tally.format(source='expired'))}) SELECT COUNT(*) FROM expired"),
            params).scalar_one()
    db.session.execute(text(count_sql(tally.format(source=f"(SELECT campaign_id FROM coupons WHERE {where_sql})"))),
                       params)
    return db.session.execute(text(update_sql), params).rowcount
