"""Monthly partitions of trips and ledger_entries (PostgreSQL): made ahead, so no write fails on the 1st of a month.

The partitioning migration defines `ensure_month_partitions(today, months_ahead, since)` in the database; it makes
every missing month from January of the year before `today` (or `since`, if earlier) to `months_ahead` months
after `today`'s, and is idempotent and serialised. `flask db upgrade` calls it after the migrations
(migrations/env.py) and `accrual.jobs.create_partitions_job` calls it daily (cron_config.py). SQLite has no
partitions: there the tables stay plain and this does nothing.
"""

from __future__ import annotations

from datetime import date

from flask import current_app
from sqlalchemy import text

from metropoints.core.db import db, is_postgres
from metropoints.core.timeutil import service_day, utcnow

PARTITIONED_TABLES = ("trips", "ledger_entries")


def create_partitions(*, today: date | None = None, months_ahead: int | None = None,
                      since: date | None = None) -> int:
    """Make the missing monthly partitions up to `months_ahead` (default PARTITION_MONTHS_AHEAD) months after
    `today` (default: today's service day); returns how many were made (0 on SQLite)."""
    if not is_postgres():
        return 0
    ahead = current_app.config["PARTITION_MONTHS_AHEAD"] if months_ahead is None else months_ahead
    return db.session.execute(text("SELECT ensure_month_partitions(:today, :ahead, :since)"), {
        "today": today or service_day(utcnow()), "ahead": int(ahead), "since": since}).scalar_one()


def partition_months(table: str) -> list[str]:
    """The months (YYYY_MM) that `table` has a partition for, oldest first (empty on SQLite)."""
    if not is_postgres():
        return []
    names = db.session.scalars(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = CAST(:table AS regclass) ORDER BY c.relname"), {"table": table})
    return [name.removeprefix(table + "_") for name in names]
