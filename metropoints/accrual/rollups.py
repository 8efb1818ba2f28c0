"""The trips' rollup (`rollup_trip_days`): per service day, mode and rule version, the credited and capped trips,
their metres, points and grams CO2e, added by the same statement or transaction that credits them; and each rider's
figures per mode on the rider's row (`riders.<mode>_metres`, `_co2e_grams`, `_points`), added by the same writers.

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

from metropoints.accrual.models import TripMode
from metropoints.core.db import db
from metropoints.core.rollups import upsert_sql

TABLE = "rollup_trip_days"
KEYS = ("service_day", "mode", "rule_version_id")
COUNTERS = ("trips", "metres", "points", "co2e_grams")
COUNTED = "('credited', 'capped')"  # a capped trip earned fewer points, but the rider rode: its CO2e counts
# Each rider's figures per mode, on the rider's own row (core.models.Rider: <mode>_<figure>), from these trip columns.
RIDER_FIGURES = {"metres": "distance_m", "co2e_grams": "co2e_grams", "points": "points"}



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


def rider_figure_columns() -> list[tuple[str, str, str]]:
    """(mode, the riders' column, the trips' column) of each figure a rider's row keeps per mode."""
    return [(mode.value, f"{mode.value}_{figure}", column) for mode in TripMode
            for figure, column in RIDER_FIGURES.items()]


def rider_figure_names() -> list[str]:
    """The riders' columns of their carbon account, in rider_figure_columns' order."""
    return [name for _, name, _ in rider_figure_columns()]


def rider_figure_sums(alias: str) -> str:
    """The select-list of each rider figure summed over the trips `alias` (their mode picks the column)."""
    return ", ".join(f"SUM(CASE WHEN {alias}.mode = '{mode}' THEN {alias}.{column} ELSE 0 END) AS {name}"
                     for mode, name, column in rider_figure_columns())


def rider_figure_sets(agg: str) -> str:
    """The SET list adding the sums of `agg` (rider_figure_sums) to the rider's row."""
    return ", ".join(f"{name} = riders.{name} + {agg}.{name}" for name in rider_figure_names())


def credit_riders_sql(source: str, *, balance: bool = True) -> str:
    """The UPDATE adding the counted trips of `source` (trips' columns, `mode` included) to their riders: every
    figure to the rider's carbon account and, with `balance`, the points to the balance (one write of each rider's
    row, which the crediting statement makes anyway). Without it the balance is left alone, for writers that post
    the points apart (accrual.ingest.post_trip_credits). The riders are locked already."""
    sets, sums = rider_figure_sets("agg"), rider_figure_sums("t")
    if balance:
        sets, sums = f"points_balance = riders.points_balance + agg.total, {sets}", f"SUM(t.points) AS total, {sums}"
    return (f"UPDATE riders SET {sets} FROM (SELECT t.rider_id, {sums} FROM {source} t "
            f"WHERE t.status IN {COUNTED} AND t.rider_id IS NOT NULL GROUP BY t.rider_id) agg "
            "WHERE riders.id = agg.rider_id")


def add_trips(trip_pks_sql: str, params: dict | None = None) -> None:
    """Add the trips named by `trip_pks_sql` (a SELECT of trip ids) to the day's rollup and to their riders'
    carbon accounts, as stored now (their points go to the balance apart, with their ledger entries)."""
    source = f"(SELECT * FROM trips WHERE id IN ({trip_pks_sql}))"
    db.session.execute(text(add_trips_sql(source)), params or {})
    db.session.execute(text(credit_riders_sql(source, balance=False)), params or {})


def record_trip_changes(trip_pks_sql: str, params: dict | None = None) -> None:
    """Name the trips of `trip_pks_sql` (a SELECT of trip ids) as changed since they were stored, for the carbon
    export (`trip_changes`); once each until the export takes them."""
    db.session.execute(text(
        "INSERT INTO trip_changes (trip_pk, service_day) SELECT id, service_day FROM trips "
        f"WHERE id IN ({trip_pks_sql}) ON CONFLICT DO NOTHING"), params or {})
