"""The carbon export: a month's credited trips, per mode, as CSV files a carbon registry can take, and a JSON
summary with their totals and each file's SHA-256.

Every trip is in at most one export: its first export writes a `trip` line (unique per trip, carbon_export_lines),
and later exports of its month skip it. When a trip of a month already exported changes afterwards (its km, grams or
points; it no longer counts: refused after a review, found to be a duplicate; or it counts only now: credited after
a review or when its card was linked, or sent late: the feed takes trips up to 30 days old), the next export,
whatever month it is of, writes its line: the `adjustment` of the difference between what it is now and the sum of
its lines so far, or its first `trip` line. So the registry's sum of a trip's lines is always the trip as it stands.
A credited or capped trip counts with its figures; any other status with nothing. Each line carries its trip's
service day; the summary counts the lines per month.

Points moved by hand (`flask points adjust`, a ledger entry that names no trip) are not in the export: they change
a balance, not a trip's km or grams, and the export is the carbon account of trips.

An export reads the month's trips only (its service days: one partition of `trips`), the month's export lines (by
`ix_carbon_export_lines_day`) and the trips named in accrual's `trip_changes` (the statements that change a stored
trip name it there: a review decision, a held trip credited on linking; the export takes and empties it). Exports
are serialised by a lock on `carbon_exports` (PostgreSQL; SQLite has one writer), so two at once cannot both take a
trip. The operation flushes and never commits; the files are written before the caller commits, and named by the
export's id, so a failed commit leaves files no export claims (the CLI removes them).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select, text

from metropoints.accrual.checks import MAX_AGE
from metropoints.accrual.models import TripMode
from metropoints.accrual.rollups import COUNTED
from metropoints.core.db import db, is_postgres, sql_param
from metropoints.core.timeutil import isoformat, service_day, utcnow
from metropoints.reports.errors import BadExportDirectory, PeriodNotBegun
from metropoints.reports.models import CarbonExport
from metropoints.settlement.periods import next_period, parse_period, period_label, period_of

CSV_COLUMNS = ("line_id", "kind", "source", "trip_id", "service_day", "km", "co2e_grams", "points", "rule_version",
               "co2e_g_per_km", "first_export")
LINE_COLUMNS = "export_id, kind, trip_pk, service_day, mode, rule_version_id, distance_m, co2e_grams, points"
PERIOD = "t.service_day >= :first AND t.service_day < :next"

FIGURES = ("distance_m", "co2e_grams", "points")


def _counted(column: str) -> str:
    """A trip's figure as it counts now: its own when credited or capped, else none."""
    return f"CASE WHEN t.status IN {COUNTED} THEN t.{column} ELSE 0 END"


_NOW = ", ".join(f"{_counted(column)} AS {column}" for column in FIGURES)
# The month's counted trips without a trip line yet.
_NEW_TRIPS = (
    f"INSERT INTO carbon_export_lines ({LINE_COLUMNS}) "
    "SELECT :export_id, 'trip', t.id, t.service_day, t.mode, t.rule_version_id, t.distance_m, t.co2e_grams, t.points "
    f"FROM trips t WHERE {PERIOD} AND t.status IN {COUNTED} AND NOT EXISTS (SELECT 1 FROM carbon_export_lines l "
    "WHERE l.trip_pk = t.id AND l.kind = 'trip') ORDER BY t.service_day, t.id")
# The month's exported trips whose figures now differ from the sum of their lines: the difference.
_CORRECTIONS = (
    f"INSERT INTO carbon_export_lines ({LINE_COLUMNS}) "
    "SELECT :export_id, 'adjustment', t.id, t.service_day, t.mode, t.rule_version_id, "
    f"c.distance_m - x.distance_m, c.co2e_grams - x.co2e_grams, c.points - x.points "
    "FROM (SELECT trip_pk, service_day, SUM(distance_m) AS distance_m, SUM(co2e_grams) AS co2e_grams, "
    "SUM(points) AS points FROM carbon_export_lines WHERE service_day >= :first AND service_day < :next "
    "GROUP BY trip_pk, service_day) x "
    f"JOIN trips t ON t.id = x.trip_pk AND t.service_day = x.service_day AND {PERIOD} "
    f"JOIN (SELECT t.id, {_NOW} FROM trips t WHERE {PERIOD}) c "
    "ON c.id = t.id "
    "WHERE c.distance_m <> x.distance_m OR c.co2e_grams <> x.co2e_grams OR c.points <> x.points "
    "ORDER BY t.service_day, t.id")
# The changed trips (`{pending}`: the rows taken from trip_changes): the difference for a trip exported before; the
# first line of one that counts only now, when its month was exported before (else its month's first export takes
# it); nothing when nothing differs.
_DIFFERENCES = ", ".join(f"{_counted(column)} - COALESCE(x.{column}, 0) AS {column}" for column in FIGURES)
_PENDING = (
    f"INSERT INTO carbon_export_lines ({LINE_COLUMNS}) SELECT * FROM ("
    "SELECT :export_id AS export_id, CASE WHEN x.lines IS NULL THEN 'trip' ELSE 'adjustment' END AS kind, t.id, "
    f"t.service_day, t.mode, t.rule_version_id, {_DIFFERENCES} "
    "FROM {pending} p JOIN trips t ON t.id = p.trip_pk AND t.service_day = p.service_day "
    "LEFT JOIN (SELECT l.trip_pk, COUNT(*) AS lines, SUM(l.distance_m) AS distance_m, "
    "SUM(l.co2e_grams) AS co2e_grams, SUM(l.points) AS points FROM carbon_export_lines l "
    "JOIN {pending} q ON l.service_day = q.service_day AND l.trip_pk = q.trip_pk GROUP BY l.trip_pk) x "
    f"ON x.trip_pk = t.id WHERE x.lines IS NOT NULL OR (t.status IN {COUNTED} AND EXISTS (SELECT 1 FROM "
    "carbon_exports e WHERE e.period = {month} AND e.id <> :export_id)) ORDER BY t.service_day, t.id) d "
    "WHERE d.kind = 'trip' OR d.distance_m <> 0 OR d.co2e_grams <> 0 OR d.points <> 0")
# One mode's lines of an export, for its file: the trip's source and id, the version's factor, its first export.
# The lines of other months than the export's are the changed trips' (a few); the join finds each trip's partition.
_FILE_LINES = (
    "SELECT l.id, l.kind, t.source, t.trip_id, l.service_day, l.distance_m, l.co2e_grams, l.points, "
    "l.rule_version_id, rv.co2e_mg_per_km, f.export_id FROM carbon_export_lines l "
    "JOIN trips t ON t.id = l.trip_pk AND t.service_day = l.service_day "
    "JOIN rule_versions rv ON rv.id = l.rule_version_id "
    "LEFT JOIN carbon_export_lines f ON f.trip_pk = l.trip_pk AND f.kind = 'trip' "
    "WHERE l.export_id = :export_id AND l.mode = :mode ORDER BY l.id")


@dataclass
class ModeFile:
    """One mode's CSV of an export: where it is, its SHA-256 and what its lines add up to."""

    mode: TripMode
    path: Path
    sha256: str = ""
    trip_lines: int = 0
    adjustment_lines: int = 0
    metres: int = 0
    co2e_grams: int = 0
    points: int = 0
    periods: dict[str, list[int]] = field(default_factory=dict)  # YYYY-MM of the lines' days -> [trip, adjustment]

    def summary(self) -> dict:
        """The file as the JSON summary lists it."""
        return {"mode": self.mode.value, "file": self.path.name, "sha256": self.sha256, "trip_lines": self.trip_lines,
                "adjustment_lines": self.adjustment_lines, "km": km(self.metres), "co2e_grams": self.co2e_grams,
                "points": self.points}


@dataclass
class ExportResult:
    """What an export wrote: its record, one CSV per mode and the JSON summary."""

    export: CarbonExport
    files: list[ModeFile] = field(default_factory=list)
    summary_path: Path | None = None

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        return [f.path for f in self.files] + ([self.summary_path] if self.summary_path else [])


def km(metres: int) -> float:
    """Metres as km with 3 decimals (negative for an adjustment that takes distance back)."""
    return float(Decimal(metres) / 1000)


def _km_text(metres: int) -> str:
    """Metres as km written with 3 decimals."""
    return f"{Decimal(metres) / 1000:.3f}"


def export_period(*, period: str, out_dir: str | os.PathLike, actor_label: str,
                  now: datetime | None = None) -> ExportResult:
    """Export the month `period` (YYYY-MM, its service days in Asia/Shanghai) into `out_dir`: the trips not exported
    before and the corrections of those that were, one CSV per mode and a JSON summary. Flushes, never commits."""
    now = now or utcnow()
    first = parse_period(period)
    if first > period_of(now):
        raise PeriodNotBegun(field="period")
    folder = _folder(out_dir)
    bounds = {"first": sql_param(first), "next": sql_param(next_period(first))}
    db.session.flush()
    if is_postgres():
        db.session.execute(text("LOCK TABLE carbon_exports IN EXCLUSIVE MODE"))
    export = CarbonExport(period=first, created_at=now, created_by=actor_label)
    db.session.add(export)
    db.session.flush()
    params = {**bounds, "export_id": export.id}
    _take_pending(params)
    _take_late_trips(first, now, export.id)
    db.session.execute(text(_NEW_TRIPS), params)
    db.session.execute(text(_CORRECTIONS), params)
    export.trip_lines, export.adjustment_lines = (db.session.execute(text(
        "SELECT COUNT(*) FILTER (WHERE kind = 'trip'), COUNT(*) FILTER (WHERE kind = 'adjustment') "
        "FROM carbon_export_lines WHERE export_id = :export_id"), params).one())
    result = ExportResult(export)
    stem = f"carbon-{period_label(first)}-export-{export.id}"
    for mode in TripMode:
        mode_file = ModeFile(mode, folder / f"{stem}-{mode.value}.csv")
        result.files.append(mode_file)
        _write_csv(mode_file, params)
    summary = _summary(export, first, result.files)
    export.summary_json = json.dumps(summary, ensure_ascii=False, separators=(",", ":"))
    result.summary_path = folder / f"{stem}-summary.json"
    _write_atomically(result.summary_path, json.dumps(summary, ensure_ascii=False, indent=2).encode() + b"\n")
    db.session.flush()
    return result


def _take_pending(params: dict) -> None:
    """The lines of the changed trips of exported months, and trip_changes emptied of them. On PostgreSQL
    one statement takes the rows it reads (a trip changing meanwhile is named again, for the next export); SQLite
    has one writer."""
    if is_postgres():
        db.session.execute(text(
            "WITH taken AS (DELETE FROM trip_changes RETURNING trip_pk, service_day) "
            + _PENDING.format(pending="taken", month="CAST(date_trunc('month', t.service_day) AS date)")), params)
        return
    db.session.execute(text(_PENDING.format(pending="trip_changes", month="strftime('%Y-%m-01', t.service_day)")),
                       params)
    db.session.execute(text("DELETE FROM trip_changes"))


def _take_late_trips(first: date, now: datetime, export_id: int) -> None:
    """The first lines of trips that arrived after their month was exported: the feed takes trips up to MAX_AGE old,
    so only months ending within that window of now can get any, and only their days from then on are read (a
    window's trips, never the history)."""
    oldest = service_day(now - MAX_AGE - timedelta(days=1))
    month = oldest.replace(day=1)
    while month <= period_of(now):
        if month != first and db.session.scalar(select(CarbonExport.id).where(
                CarbonExport.period == month, CarbonExport.id != export_id).limit(1)) is not None:
            db.session.execute(text(_NEW_TRIPS), {"export_id": export_id, "first": sql_param(max(month, oldest)),
                                                  "next": sql_param(next_period(month))})
        month = next_period(month)


def _folder(out_dir: str | os.PathLike) -> Path:
    """The export's directory, made if missing; an error when it cannot be."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BadExportDirectory(f"{folder} is not a directory.", field="out") from None
    except OSError as error:
        raise BadExportDirectory(f"{folder} cannot be made: {error.strerror}.", field="out") from None
    if not os.access(folder, os.W_OK):
        raise BadExportDirectory(f"{folder} is not writable.", field="out")
    return folder


def _rows(mode_file: ModeFile, params: dict) -> Iterator[list[object]]:
    """The CSV rows of one mode's lines, adding them up on `mode_file` as they go."""
    lines = db.session.execute(text(_FILE_LINES), {**params, "mode": mode_file.mode.value},
                               execution_options={"yield_per": 5000})
    for (line_id, kind, source, trip_id, day, metres, grams, points, version, mg_per_km, first_export) in lines:
        day = day if isinstance(day, date) else date.fromisoformat(day)
        counts = mode_file.periods.setdefault(period_label(day), [0, 0])
        if kind == "trip":
            mode_file.trip_lines += 1
            counts[0] += 1
        else:
            mode_file.adjustment_lines += 1
            counts[1] += 1
        mode_file.metres += metres
        mode_file.co2e_grams += grams
        mode_file.points += points
        yield [line_id, kind, source, trip_id, day.isoformat(), _km_text(metres), grams, points, version,
               f"{(Decimal(mg_per_km) / 1000).normalize():f}", first_export]


class _HashingFile:
    """A text sink for csv.writer that writes UTF-8 to a binary file and hashes what it writes."""

    def __init__(self, raw: io.BufferedWriter) -> None:
        """Wrap an open binary file."""
        self.raw = raw
        self.digest = hashlib.sha256()

    def write(self, chunk: str) -> None:
        """Encode, hash and write."""
        data = chunk.encode("utf-8")
        self.digest.update(data)
        self.raw.write(data)


def _write_csv(mode_file: ModeFile, params: dict) -> None:
    """One mode's CSV (UTF-8, a header line, `\\r\\n` line ends as RFC 4180 has them), streamed from the database
    and hashed as it is written (whole or not at all: a temporary file beside it, renamed); its SHA-256 set."""
    partial = mode_file.path.with_name(mode_file.path.name + ".partial")
    with partial.open("wb") as raw:
        sink = _HashingFile(raw)
        writer = csv.writer(sink)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_rows(mode_file, params))
    os.replace(partial, mode_file.path)
    mode_file.sha256 = sink.digest.hexdigest()


def _summary(export: CarbonExport, first: date, files: list[ModeFile]) -> dict:
    """The export's JSON summary: the period, each file with its SHA-256 and totals, and the totals of all."""
    last = next_period(first) - timedelta(days=1)
    total = {key: sum(getattr(f, key) for f in files)
             for key in ("trip_lines", "adjustment_lines", "metres", "co2e_grams", "points")}
    periods: dict[str, list[int]] = {}
    for mode_file in files:
        for label, (trips, adjustments) in mode_file.periods.items():
            counts = periods.setdefault(label, [0, 0])
            counts[0] += trips
            counts[1] += adjustments
    return {"export_id": export.id, "period": period_label(first),
            "service_days": {"first": first.isoformat(), "last": last.isoformat()},
            "created_at": isoformat(export.created_at), "created_by": export.created_by,
            "columns": list(CSV_COLUMNS), "files": [f.summary() for f in files],
            # The lines by the month of their trips' days: other months' are changes of trips exported before.
            "lines_by_period": {label: {"trip_lines": trips, "adjustment_lines": adjustments}
                                for label, (trips, adjustments) in sorted(periods.items())},
            "totals": {"trip_lines": total["trip_lines"], "adjustment_lines": total["adjustment_lines"],
                       "km": km(total["metres"]), "co2e_grams": total["co2e_grams"], "points": total["points"]}}


def _write_atomically(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (a temporary file beside it, renamed)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
