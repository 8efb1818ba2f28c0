"""The rollups recomputed from the raw rows, set-wise: `flask reports rebuild` replaces them, `flask reports verify`
compares them and lists every difference.

Each rollup is one GROUP BY over its raw rows (riders by registration day; credited and capped trips by service day,
mode and rule version, and per rider and mode on the rider's row; coupons by campaign and the day of each event; each
rider's credits by year), the same figures the writers (or, for the credits per year, a trigger on the ledger) add as
they go.
Rebuilding on PostgreSQL first locks the rollup tables against writers (EXCLUSIVE: reads go on; the riders' table
too, for their carbon accounts, so sales and credits wait for the rebuild's commit), then reads the raw rows: every
writer that already counted something has committed by then and is in the rebuild, and every later one waits and
adds its own on top. It reads all history, so it is a maintenance command, never a request or a job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from metropoints.accrual import rollups as trip_rollups
from metropoints.accrual.models import RiderYear
from metropoints.core.db import db, is_postgres
from metropoints.core.rollups import local_day_sql
from metropoints.redemption import rollups as coupon_rollups


@dataclass(frozen=True, slots=True)
class Rollup:
    """A rollup table, its key and counter columns, and the SELECT computing its rows from the raw rows."""

    table: str
    keys: tuple[str, ...]
    counters: tuple[str, ...]
    raw_sql: Callable[[], str]


def _riders_sql() -> str:
    """Riders by the Asia/Shanghai day they registered."""
    day = local_day_sql("created_at")
    return f"SELECT {day} AS service_day, COUNT(*) AS registered FROM riders GROUP BY {day}"


def _trips_sql() -> str:
    """Credited and capped trips by service day, mode (the trips' own column) and rule version."""
    return ("SELECT service_day, mode, rule_version_id, COUNT(*) AS trips, SUM(distance_m) AS metres, "
            f"SUM(points) AS points, SUM(co2e_grams) AS co2e_grams FROM trips WHERE status IN {trip_rollups.COUNTED} "
            "GROUP BY service_day, mode, rule_version_id")


def _coupons_sql() -> str:
    """Each coupon's events (bought, used, cancelled, expired) on their Asia/Shanghai days, by campaign and day."""
    events = " UNION ALL ".join((
        f"SELECT campaign_id, {local_day_sql('issued_at')} AS d, 1 AS b, points_spent AS ps, 0 AS u, 0 AS c, "
        "0 AS pr, 0 AS e FROM coupons",
        f"SELECT campaign_id, {local_day_sql('used_at')}, 0, 0, 1, 0, 0, 0 FROM coupons WHERE status = 'used'",
        f"SELECT campaign_id, {local_day_sql('cancelled_at')}, 0, 0, 0, 1, points_spent, 0 FROM coupons "
        "WHERE status = 'cancelled'",
        f"SELECT campaign_id, {local_day_sql('expired_at')}, 0, 0, 0, 0, 0, 1 FROM coupons WHERE status = 'expired'"))
    return (f"SELECT campaign_id, d AS service_day, SUM(b) AS bought, SUM(ps) AS points_spent, SUM(u) AS used, "
            f"SUM(c) AS cancelled, SUM(pr) AS points_refunded, SUM(e) AS expired FROM ({events}) ev "
            "GROUP BY campaign_id, d")


def _rider_years_sql() -> str:
    """Each rider's credits (positive ledger entries) by the calendar year of their `earned_on`."""
    year = ("CAST(EXTRACT(YEAR FROM earned_on) AS integer)" if is_postgres()
            else "CAST(strftime('%Y', earned_on) AS integer)")
    return (f"SELECT rider_id, {year} AS year, SUM(points) AS points_earned FROM ledger_entries WHERE points > 0 "
            f"GROUP BY rider_id, {year}")


ROLLUPS = (
    Rollup("rollup_rider_days", ("service_day",), ("registered",), _riders_sql),
    Rollup(trip_rollups.TABLE, trip_rollups.KEYS, trip_rollups.COUNTERS, _trips_sql),
    Rollup(coupon_rollups.TABLE, coupon_rollups.KEYS, coupon_rollups.COUNTERS, _coupons_sql),
    Rollup(RiderYear.__tablename__, ("rider_id", "year"), ("points_earned",), _rider_years_sql),
)


def _rider_figures_sql() -> str:
    """Each rider's carbon account per mode (the riders' <mode>_<figure> columns) from their credited and capped
    trips (the trips' own mode)."""
    return (f"SELECT t.rider_id, {trip_rollups.rider_figure_sums('t')} FROM trips t "
            f"WHERE t.status IN {trip_rollups.COUNTED} AND t.rider_id IS NOT NULL GROUP BY t.rider_id")


def _rider_figures_not_zero() -> str:
    """The condition of a rider whose carbon account is not all zeros (the others count as no row)."""
    return " OR ".join(f"{name} <> 0" for name in trip_rollups.rider_figure_names())


def rebuild() -> dict[str, int]:
    """Replace every rollup by its recomputation from the raw rows; the rows written per table. Flushes, never
    commits (the caller commits, which lets the waiting writers go on)."""
    db.session.flush()
    if is_postgres():
        db.session.execute(text(f"LOCK TABLE {', '.join(r.table for r in ROLLUPS)}, riders IN EXCLUSIVE MODE"))
    written = {}
    for rollup in ROLLUPS:
        columns = ", ".join((*rollup.keys, *rollup.counters))
        db.session.execute(text(f"DELETE FROM {rollup.table}"))
        written[rollup.table] = db.session.execute(text(
            f"INSERT INTO {rollup.table} ({columns}) SELECT {columns} FROM ({rollup.raw_sql()}) raw")).rowcount
    # The riders' carbon accounts: zero, then the sums of the riders who have counted trips.
    names = trip_rollups.rider_figure_names()
    db.session.execute(text(f"UPDATE riders SET {', '.join(f'{n} = 0' for n in names)} "
                            f"WHERE {_rider_figures_not_zero()}"))
    written["riders"] = db.session.execute(text(
        f"UPDATE riders SET {', '.join(f'{n} = raw.{n}' for n in names)} FROM ({_rider_figures_sql()}) raw "
        "WHERE riders.id = raw.rider_id")).rowcount
    db.session.expire_all()
    return written


@dataclass(frozen=True, slots=True)
class Difference:
    """A rollup figure that is not what the raw rows say."""

    table: str
    key: tuple[str, ...]
    column: str
    rollup: int
    raw: int

    def __str__(self) -> str:
        """One line for the terminal."""
        return f"{self.table} {'/'.join(self.key)} {self.column}: rollup {self.rollup}, raw rows {self.raw}"


def _rows(sql: str, width: int) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Rows of a (keys..., counters...) query keyed by their keys as text (dates as YYYY-MM-DD on any database)."""
    found = {}
    for row in db.session.execute(text(sql)):
        found[tuple(str(value) for value in row[:width])] = tuple(int(value or 0) for value in row[width:])
    return found


def differences() -> list[Difference]:
    """Every figure where a rollup and its raw rows disagree (a missing row counts as zeros). Run it in one
    snapshot (REPEATABLE READ on PostgreSQL: the `verify` command does) so writers in between cannot show up."""
    db.session.flush()
    found = []
    for rollup in ROLLUPS:
        columns = ", ".join((*rollup.keys, *rollup.counters))
        width = len(rollup.keys)
        kept = _rows(f"SELECT {columns} FROM {rollup.table}", width)
        raw = _rows(f"SELECT {columns} FROM ({rollup.raw_sql()}) raw", width)
        found += _compare(rollup.table, rollup.counters, kept, raw)
    names = trip_rollups.rider_figure_names()
    kept = _rows(f"SELECT id, {', '.join(names)} FROM riders WHERE {_rider_figures_not_zero()}", 1)
    return found + _compare("riders", tuple(names), kept, _rows(_rider_figures_sql(), 1))


def _compare(table: str, counters: tuple[str, ...], kept: dict, raw: dict) -> list[Difference]:
    """The figures where a rollup's rows (`kept`) and the raw rows' (`raw`), keyed alike, disagree."""
    found = []
    zeros = (0,) * len(counters)
    for key in sorted(kept.keys() | raw.keys()):
        for column, mine, theirs in zip(counters, kept.get(key, zeros), raw.get(key, zeros), strict=True):
            if mine != theirs:
                found.append(Difference(table, key, column, mine, theirs))
    return found
