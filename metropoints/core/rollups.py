"""Rollups per service day: counters kept by the transactions that write the raw rows, read by every page.

Each package keeps its own figures in the same transaction as the rows they count (accrual: trips; redemption:
coupons; core: riders), with one upsert that adds what the transaction did to the day's row. A request then reads a
row per day (or per campaign and day) instead of the history behind it; `flask reports rebuild` recomputes every
rollup from the raw rows and `flask reports verify` compares the two.

Which rows are hot: the riders' row of the day takes one registration at a time (registrations are a few thousand
a day); the trips' rows take one batch at a time per (day, rule version), and a batch holds them only from its one
statement to its commit. No city-wide row is written by a redemption: coupons count per campaign and day, the row
a sale of that campaign already queues on (its stock row).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text

from metropoints.core.db import db, is_postgres, sql_param
from metropoints.core.timeutil import service_day


def upsert_sql(table: str, keys: Sequence[str], counters: Sequence[str], select_sql: str) -> str:
    """SQL that adds the rows of `select_sql` (keys then counters, in that order) to a rollup table.

    The SELECT should order its rows by the keys, so two transactions lock a table's rows in one order. It must have
    a WHERE clause (SQLite reads `SELECT ... ON CONFLICT` without one as a join constraint).
    """
    columns = ", ".join((*keys, *counters))
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters)
    return f"INSERT INTO {table} ({columns}) {select_sql} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {adds}"


def local_day_sql(column: str) -> str:
    """SQL for the Asia/Shanghai date of a UTC timestamp column (raw SQL; see reports.queries.local_date)."""
    if is_postgres():
        return f"CAST(timezone('Asia/Shanghai', {column}) AS date)"
    return f"date({column}, '+8 hours')"


_RIDER_DAY = upsert_sql("rollup_rider_days", ("service_day",), ("registered",),
                        "SELECT :day, 1 WHERE 1 = 1")


def count_registration(at: datetime) -> None:
    """Add a rider registered at `at` to the day's count (in the registration's transaction)."""
    db.session.execute(text(_RIDER_DAY), {"day": sql_param(service_day(at))})
