"""The trips' rollup (`rollup_trip_days`): per service day, mode and rule version, the credited and capped trips,
their metres, points and grams CO2e, added by the same statement or transaction that credits them.

A batch adds one aggregated upsert (its rows grouped by day, mode and rule version, in key order, so two batches
lock the day rows in one order after having locked their riders in id order); crediting held trips adds theirs the
same way. Points issued for trips equal the `points` column: a trip's ledger entry carries the trip's points.

The mode of a row is its rule version's: every rule version belongs to one mode and a trip is credited under a
version of its own mode, so the writers' SQL needs nothing but the trips' `rule_version_id` (a batch's CTE of the
trips it inserted need not return the mode; a trip without a version counts as metro). `flask reports verify`
compares the rows with the trips' own `mode` column, so a trip credited under another mode's version shows there.
"""

from __future__ import annotations

from sqlalchemy import text

from metropoints.core.db import db
from metropoints.core.rollups import upsert_sql

TABLE = "rollup_trip_days"
KEYS = ("service_day", "mode", "rule_version_id")
COUNTERS = ("trips", "metres", "points", "co2e_grams")
COUNTED = "('credited', 'capped')"  # a capped trip earned fewer points, but the rider rode: its CO2e counts



def add_trips_sql(source: str) -> str:
    """The upsert adding the counted trips of `source` (a table, CTE or subquery with trips' columns; the mode is
    read from each group's rule version, so `source` needs no `mode` column)."""
    return upsert_sql(TABLE, KEYS, COUNTERS, (
        "SELECT d.service_day, COALESCE(rv.mode, 'metro'), d.rule_version_id, d.trips, d.metres, d.points, "
        "d.co2e_grams FROM (SELECT t.service_day, t.rule_version_id, COUNT(*) AS trips, SUM(t.distance_m) AS metres, "
        "SUM(t.points) AS points, SUM(t.co2e_grams) AS co2e_grams "
        f"FROM {source} t WHERE t.status IN {COUNTED} GROUP BY t.service_day, t.rule_version_id) d "
        "LEFT JOIN rule_versions rv ON rv.id = d.rule_version_id WHERE d.trips > 0 "
        "ORDER BY d.service_day, COALESCE(rv.mode, 'metro'), d.rule_version_id"))


def add_trips(trip_pks_sql: str, params: dict | None = None) -> None:
    """Add the trips named by `trip_pks_sql` (a SELECT of trip ids) to the rollup, as stored now."""
    db.session.execute(text(add_trips_sql(f"(SELECT * FROM trips WHERE id IN ({trip_pks_sql}))")), params or {})


def record_trip_changes(trip_pks_sql: str, params: dict | None = None) -> None:
    """Name the trips of `trip_pks_sql` (a SELECT of trip ids) as changed since they were stored, for the carbon
    export (`trip_changes`); once each until the export takes them."""
    db.session.execute(text(
        "INSERT INTO trip_changes (trip_pk, service_day) SELECT id, service_day FROM trips "
        f"WHERE id IN ({trip_pks_sql}) ON CONFLICT DO NOTHING"), params or {})
