"""Points under the caps, set-wise: the SQL that turns candidate trips into statuses, points and grams CO2e.

`allocate_cte(checks=...)` gives the common table expressions after `cand`, ending in `allocated`. `cand` holds the
trips to allocate, with at least rider_id, service_day, entered_at, exited_at, ord, distance_m, rule_version_id,
mode, steps, source, entry_station and exit_station (and, with checks, entered_s and exited_s: epoch seconds).

1. `hist`: each trip's rule version (by primary key) and what the rider's stored trips say, from one index probe of
   ix_trips_rider_day per trip (a LATERAL subquery on PostgreSQL, correlated subqueries on SQLite), never a join the
   planner could misjudge: the points already earned that day (in all modes, and in this mode), the highest step
   count credited that day, and, with checks, the day's trips, the trips between the same two stations, the trips
   overlapping this one in time and the same metro ride from another source (entry within DUPLICATE_SECONDS).
2. Duplicates: a metro ride another source reported (stored, or earlier in the batch: same rider and stations,
   entry within the window); a walking day whose step count is not higher than one already counted.
3. Review (with checks): the day's trips beyond REVIEW_TRIPS_PER_DAY, the metro trips between the same two stations
   beyond REVIEW_BACK_AND_FORTH, a trip overlapping in time another of the rider's (stored, or earlier in the batch).
4. Points: floor(km x points/km), or for walking the points of the new step count above the threshold less those of
   the count already credited (a top-up of the difference). The per-mode cap cuts first, in exit order within the
   mode; then the daily cap across modes, in exit order over the day: the trip that crosses a cap earns the
   remainder, later ones nothing (`capped`). Duplicates and trips under review earn nothing and use no room.
"""

from __future__ import annotations

from metropoints.core.db import is_postgres

DUPLICATE_SECONDS = 180  # the same metro ride from two sources: entries at most this far apart
# A stored trip of another service day can overlap a trip only across a midnight: the probe reads the days from the
# trip's entry (less the duplicate window) to its exit plus this, the longest trip it assumes.
LONGEST_TRIP_HOURS = 4
LIVE = "('credited', 'capped', 'review')"  # trips that count for the review rules and the duplicate check
PRECEDING = "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"

# (name, condition beside the rider's probe); the aggregate is given separately per column.
_SAME_DAY = "t.service_day = c.service_day"
_PROBES_BASE = (
    ("used", "SUM(t.points)", _SAME_DAY),
    ("used_mode", "SUM(t.points)", f"{_SAME_DAY} AND t.mode = c.mode"),
    ("best_steps", "MAX(t.steps)", f"{_SAME_DAY} AND t.mode = 'walk' AND t.status IN ('credited', 'capped')"),
)
_PAIR = ("((t.entry_station = c.entry_station AND t.exit_station = c.exit_station) OR "
         "(t.entry_station = c.exit_station AND t.exit_station = c.entry_station))")
_PROBES_CHECKS = (
    ("day_trips", "COUNT(*)", f"{_SAME_DAY} AND t.mode <> 'walk' AND t.status IN {LIVE}"),
    ("pair_trips", "COUNT(*)", f"{_SAME_DAY} AND t.mode = 'metro' AND t.status IN {LIVE} AND {_PAIR}"),
    ("overlaps", "COUNT(*)", f"t.mode <> 'walk' AND t.status IN {LIVE} AND t.entered_at < c.exited_at "
                             "AND t.exited_at > c.entered_at"),
    ("other_source", "COUNT(*)", f"t.mode = 'metro' AND t.status IN {LIVE} AND t.source <> c.source "
                                 "AND t.entry_station = c.entry_station AND t.exit_station = c.exit_station "
                                 "AND {near_entry}"),
)


def epoch_sql(column: str) -> str:
    """Whole seconds since 1970 of a timestamp column, in SQL (for the batch's window comparisons)."""
    if is_postgres():
        return f"CAST(EXTRACT(EPOCH FROM {column}) AS bigint)"
    return f"CAST(strftime('%s', {column}) AS integer)"


def _probes(checks: bool, review: bool, walk: bool) -> tuple[str, str]:
    """The select-list columns and the FROM addition that read the rider's stored trips around each trip's day."""
    base = _PROBES_BASE if walk else _PROBES_BASE[:2]
    probes = base + ((_PROBES_CHECKS if review else _PROBES_CHECKS[-1:]) if checks else ())
    if is_postgres():
        near = (f"t.entered_at BETWEEN c.entered_at - interval '{DUPLICATE_SECONDS} seconds' "
                f"AND c.entered_at + interval '{DUPLICATE_SECONDS} seconds'")
        local = "AT TIME ZONE 'Asia/Shanghai' AS date)"
        days = ("t.service_day BETWEEN CASE WHEN c.mode = 'walk' THEN c.service_day ELSE "
                f"CAST((c.entered_at - interval '{DUPLICATE_SECONDS} seconds') {local} END "
                "AND CASE WHEN c.mode = 'walk' THEN c.service_day ELSE "
                f"CAST((c.exited_at + interval '{LONGEST_TRIP_HOURS} hours') {local} END" if checks
                else "t.service_day = c.service_day")
        aggregates = ", ".join(f"{agg} FILTER (WHERE {cond.format(near_entry=near)}) AS {name}"
                               for name, agg, cond in probes)
        lateral = (f" LEFT JOIN LATERAL (SELECT {aggregates} FROM trips t "
                   f"WHERE t.rider_id = c.rider_id AND {days}) h ON true")
        return ", ".join(f"h.{name}" for name, _, _ in probes), lateral
    near = (f"abs(julianday(t.entered_at) - julianday(c.entered_at)) * 86400 <= {DUPLICATE_SECONDS}")
    days = "t.service_day BETWEEN date(c.service_day, '-1 day') AND date(c.service_day, '+1 day')"
    columns = ", ".join(f"(SELECT {agg} FROM trips t WHERE t.rider_id = c.rider_id AND {days} "
                        f"AND {cond.format(near_entry=near)}) AS {name}" for name, agg, cond in probes)
    return columns, ""


def _day(alias: str) -> str:
    """The window of a rider's service day in exit order, the rows before this one."""
    return f"PARTITION BY {alias}.rider_id, {alias}.service_day ORDER BY {alias}.exited_at, {alias}.ord {PRECEDING}"


def _batch_steps(alias: str, walk: bool) -> str:
    """The highest step count reported earlier in the batch for the rider's day (walking days all end at the day's
    last second, so exit order among them is the batch's order)."""
    if not walk:
        return "CAST(NULL AS integer) AS batch_steps"
    return f"MAX({alias}.steps) FILTER (WHERE {alias}.mode = 'walk') OVER ({_day(alias)}) AS batch_steps"


def _by_mode() -> str:
    """The points of the rider's day so far in the trip's own mode (for its mode's cap), over the DAY window."""
    return " ".join(
        f"WHEN '{mode}' THEN SUM(CASE WHEN p.eligible THEN p.points_raw ELSE 0 END) FILTER (WHERE p.mode = "
        f"'{mode}') OVER ({_day('p')})" for mode in ("metro", "bus", "bike", "walk"))


def allocate_cte(*, checks: bool, review: bool = True, walk: bool = True, mode_caps: bool = True) -> str:
    """The CTEs from `hist` to `allocated` (see the module docstring); {greatest}/{least} left for _dialect_sql.

    `checks` finds duplicates across sources and, with `review`, the patterns held for review; then the statement
    takes :review_day (REVIEW_TRIPS_PER_DAY) and :review_pair (REVIEW_BACK_AND_FORTH). Without `walk` (no walking
    day among the trips) or `mode_caps` (no rule version of theirs with a cap of its mode), the windows those need
    are left out: each is a sort of the batch.
    """
    columns, lateral = _probes(checks, review, walk)
    if not walk:
        columns += ", CAST(NULL AS integer) AS best_steps"
    sql = (
        "hist AS (SELECT c.*, rv.points_per_km_milli AS ppk, rv.daily_cap, rv.mode_cap, rv.co2e_mg_per_km AS mg, "
        "rv.steps_threshold AS thr, rv.points_per_1000_steps_milli AS ppks, rv.mm_per_step AS mmps, "
        f"{columns} FROM cand c JOIN rule_versions rv ON rv.id = c.rule_version_id{lateral}), ")
    # Most windows read the rider's day in exit order (DAY): written alike, and after the others, so one sort of the
    # batch serves them all, the caps' included.
    if checks:
        same_ride = "PARTITION BY h.rider_id, h.mode, h.entry_station, h.exit_station ORDER BY h.entered_s, h.ord"
        sql += (
            f"w1 AS (SELECT h.*, LAG(h.entered_s) OVER ({same_ride}) AS prev_entered_s, "
            f"LAG(h.source) OVER ({same_ride}) AS prev_source FROM hist h), "
            "w2 AS (SELECT w1.*, CASE WHEN w1.rider_id IS NOT NULL AND w1.mode = 'metro' AND (w1.other_source > 0 "
            f"OR (w1.prev_source <> w1.source AND w1.entered_s - w1.prev_entered_s <= {DUPLICATE_SECONDS})) "
            "THEN 'reported_by_other_source' ELSE '' END AS ride_dup FROM w1), ")
        if review:
            sql += (
                "w3 AS (SELECT w2.*, "
                "COUNT(*) FILTER (WHERE w2.ride_dup = '' AND w2.mode = 'metro') OVER (PARTITION BY w2.rider_id, "
                "w2.service_day, {least}(w2.entry_station, w2.exit_station), {greatest}(w2.entry_station, "
                f"w2.exit_station) ORDER BY w2.exited_at, w2.ord {PRECEDING}) AS batch_pair, "
                "MAX(w2.exited_s) FILTER (WHERE w2.ride_dup = '' AND w2.mode <> 'walk') OVER (PARTITION BY "
                f"w2.rider_id ORDER BY w2.entered_s, w2.ord {PRECEDING}) AS batch_last_exit FROM w2), ")
        else:
            sql += "w3 AS (SELECT w2.*, 0 AS batch_pair, CAST(NULL AS bigint) AS batch_last_exit FROM w2), "
        day_count = ("COUNT(*) FILTER (WHERE w3.ride_dup = '' AND w3.mode <> 'walk') OVER "
                     f"({_day('w3')}) AS batch_day" if review else "0 AS batch_day")
        sql += f"w4 AS (SELECT w3.*, {day_count}, {_batch_steps('w3', walk)} FROM w3), "
        review_reason = (
            "CASE WHEN w4.rider_id IS NULL OR w4.ride_dup <> '' OR w4.mode = 'walk' THEN '' "
            "WHEN COALESCE(w4.day_trips, 0) + w4.batch_day >= :review_day THEN 'too_many_trips' "
            "WHEN w4.mode = 'metro' AND COALESCE(w4.pair_trips, 0) + w4.batch_pair >= :review_pair "
            "THEN 'back_and_forth' "
            "WHEN COALESCE(w4.overlaps, 0) > 0 OR w4.batch_last_exit > w4.entered_s THEN 'overlapping' "
            "ELSE '' END" if review else "''")
        sql += (
            "checked AS (SELECT w4.*, CASE WHEN w4.rider_id IS NOT NULL AND w4.mode = 'walk' "
            "AND w4.steps <= {greatest}(COALESCE(w4.best_steps, -1), COALESCE(w4.batch_steps, -1)) "
            f"THEN 'step_count_not_higher' ELSE w4.ride_dup END AS dup_reason, {review_reason} AS review_reason "
            "FROM w4), ")
    else:
        sql += (
            f"w4 AS (SELECT h.*, {_batch_steps('h', walk)} FROM hist h), "
            "checked AS (SELECT w4.*, CASE WHEN w4.rider_id IS NOT NULL AND w4.mode = 'walk' "
            "AND w4.steps <= {greatest}(COALESCE(w4.best_steps, -1), COALESCE(w4.batch_steps, -1)) "
            "THEN 'step_count_not_higher' ELSE '' END AS dup_reason, '' AS review_reason FROM w4), ")
    walk_prev = "{greatest}(COALESCE(k.best_steps, 0), COALESCE(k.batch_steps, 0))"
    sql += (
        "pts AS (SELECT k.*, (k.rider_id IS NOT NULL AND k.dup_reason = '' AND k.review_reason = '') AS eligible, "
        "CASE WHEN k.mode = 'walk' THEN {greatest}(0, k.steps * k.mmps / 1000 - "
        f"{walk_prev} * k.mmps / 1000) ELSE k.distance_m END AS distance_eff, "
        "CASE WHEN k.mode = 'walk' THEN {greatest}(0, "
        "CAST({greatest}(0, k.steps - k.thr) AS bigint) * k.ppks / 1000000 - "
        f"CAST({{greatest}}(0, {walk_prev} - k.thr) AS bigint) * k.ppks / 1000000) "
        "ELSE CAST(k.distance_m AS bigint) * k.ppk / 1000000 END AS points_raw FROM checked k), "
        + (f"m1 AS (SELECT p.*, COALESCE(CASE p.mode {_by_mode()} END, 0) AS before_mode FROM pts p), "
           if mode_caps else "m1 AS (SELECT p.*, 0 AS before_mode FROM pts p), ") +
        "m2 AS (SELECT m.*, CASE WHEN NOT m.eligible THEN 0 WHEN m.mode_cap IS NULL THEN m.points_raw "
        "ELSE {greatest}(0, {least}(m.points_raw, m.mode_cap - COALESCE(m.used_mode, 0) - m.before_mode)) END "
        "AS mode_pts FROM m1 m), "
        f"ranked AS (SELECT m.*, COALESCE(m.used, 0) + COALESCE(SUM(m.mode_pts) OVER ({_day('m')}), 0) AS before_pts "
        "FROM m2 m), "
        "allocated AS (SELECT r.*, "
        "CAST(CASE WHEN NOT r.eligible THEN 0 ELSE {greatest}(0, {least}(r.mode_pts, r.daily_cap - r.before_pts)) "
        "END AS integer) AS points, "
        "CASE WHEN r.rider_id IS NULL THEN 'held' WHEN r.dup_reason <> '' THEN 'duplicate' "
        "WHEN r.review_reason <> '' THEN 'review' "
        "WHEN r.mode_pts < r.points_raw OR r.points_raw > r.daily_cap - r.before_pts THEN 'capped' "
        "ELSE 'credited' END AS status, "
        "CASE WHEN r.dup_reason <> '' THEN r.dup_reason ELSE r.review_reason END AS reason, "
        "CAST(CASE WHEN r.dup_reason <> '' THEN 0 ELSE (CAST(r.distance_eff AS bigint) * r.mg + 500000) / 1000000 "
        "END AS integer) AS co2e_grams FROM ranked r)")
    return sql
