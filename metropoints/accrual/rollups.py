"""The trips' rollup (`rollup_trip_days`): per service day and rule version, the credited and capped trips, their
metres, points and grams CO2e, added by the same statement or transaction that credits them.

A batch adds one aggregated upsert (its rows grouped by day and rule version, in key order, so two batches lock
the day rows in one order after having locked their riders in id order); crediting held trips adds theirs the same
way. Points issued for trips equal the `points` column: a trip's ledger entry carries the trip's points.
"""

from __future__ import annotations

from sqlalchemy import text

from metropoints.core.db import db
from metropoints.core.rollups import upsert_sql

TABLE = "rollup_trip_days"
KEYS = ("service_day", "rule_version_id")
COUNTERS = ("trips", "metres", "points", "co2e_grams")
COUNTED = "('credited', 'capped')"  # a capped trip earned fewer points, but the rider rode: its CO2e counts


def add_trips_sql(source: str) -> str:
    """The upsert adding the counted trips of `source` (a table, CTE or subquery with trips' columns)."""
    return upsert_sql(TABLE, KEYS, COUNTERS, (
        "SELECT t.service_day, t.rule_version_id, COUNT(*), SUM(t.distance_m), SUM(t.points), SUM(t.co2e_grams) "
        f"FROM {source} t WHERE t.status IN {COUNTED} GROUP BY t.service_day, t.rule_version_id "
        "ORDER BY t.service_day, t.rule_version_id"))


def add_trips(trip_pks_sql: str, params: dict | None = None) -> None:
    """Add the trips named by `trip_pks_sql` (a SELECT of trip ids) to the rollup, as stored now."""
    db.session.execute(text(add_trips_sql(f"(SELECT * FROM trips WHERE id IN ({trip_pks_sql}))")), params or {})
