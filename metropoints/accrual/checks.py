"""The partner feed's row checks, one pass in Python: each mode's shape (API.md, "Green modes"), times, distance,
plausibility. A row that fails is refused with its reason and kept; the rest of the batch goes on to be staged.

Every staged row is a tuple in STAGE_COLUMNS order. Metro rows name their stations (the track distance comes from
the in-memory network); bus rows their line (the distance as given, else the line's average, else the city default);
bike rows their GPS distance; walking rows a day and a step count (distance from the rule's metres per step).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from metropoints.accrual.models import TripMode
from metropoints.accrual.network import Network
from metropoints.accrual.rules import RuleBook
from metropoints.core.timeutil import SERVICE_OFFSET, parse_timestamp, service_day

# The metro's columns, in the order the feed has always documented them; other modes add their own (MODE_FIELDS).
TRIP_FIELDS = ("trip_id", "source", "rider_ref", "entry_station", "exit_station", "entered_at", "exited_at")
COMMON_FIELDS = ("trip_id", "source", "rider_ref", "mode")
MODE_FIELDS = {
    TripMode.metro: ("entry_station", "exit_station", "entered_at", "exited_at"),
    TripMode.bus: ("line", "boarded_at", "alighted_at", "distance_m"),
    TripMode.bike: ("started_at", "ended_at", "distance_m"),
    TripMode.walk: ("day", "steps"),
}
ALL_FIELDS = tuple(dict.fromkeys(TRIP_FIELDS + COMMON_FIELDS + sum(MODE_FIELDS.values(), ())))
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
MAX_AGE = timedelta(days=30)
MAX_AHEAD = timedelta(minutes=5)
MAX_KMH = 80  # metro
BUS_MAX_KMH = 60
BIKE_MAX_KMH = 25
MAX_STEPS = 50_000  # a day
MAX_DISTANCE_M = 100_000  # a bus or bike trip's given distance at most

STAGE_COLUMNS = ("line_no", "source", "trip_id", "rider_ref", "entry_station", "exit_station", "entered_at",
                 "exited_at", "service_day", "distance_m", "rule_version_id", "mode", "line", "steps")


@dataclass(slots=True)
class Rejected:
    """A refused row: where it was, what it said, and why."""

    line_no: int
    trip_id: str
    reason: str
    detail: str
    row: object


class Refusal(Exception):
    """A row's reason for refusal, raised inside a mode's check."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _text(value: object, limit: int) -> str | None:
    """A non-empty printable string of at most `limit` characters, stripped; None for anything else.

    Printable excludes NUL and lone surrogates, which no database column can hold.
    """
    if value.__class__ is not str:
        return None
    value = value.strip()
    return value if 0 < len(value) <= limit and value.isprintable() else None


def _absent(value: object) -> bool:
    """Missing, null or empty (a CSV's empty cell)."""
    return value is None or (value.__class__ is str and not value.strip())


def _whole(value: object, name: str) -> int:
    """A whole number (JSON integer, or digits as a CSV has them)."""
    if value.__class__ is int:
        return value
    if value.__class__ is str and value.strip().isdigit() and len(value.strip()) <= 9:
        return int(value.strip())
    raise Refusal("malformed", f"{name} must be a whole number")


def _moment(value: object, name: str) -> datetime:
    """An ISO 8601 time with its offset."""
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError, OverflowError):
        raise Refusal("malformed", f"{name} must be an ISO 8601 time with an offset") from None


def _shown_id(row: Mapping) -> str:
    """The trip id of a refused row as far as it can be shown."""
    return "".join(ch for ch in str(row.get("trip_id") or "")[:64] if ch.isprintable())


@dataclass(slots=True)
class Context:
    """What the checks read: the network, the rule versions, the bus lines, the time window."""

    network: Network
    rules: RuleBook
    bus_lines: Mapping[str, int | None]  # line code -> average trip distance in metres (None: the city default)
    bus_default_m: int
    now: datetime
    oldest: datetime
    latest: datetime

    def in_window(self, exited_at: datetime) -> None:
        """Refuse an exit in the future or older than the feed takes."""
        if exited_at > self.latest:
            raise Refusal("in_future", "exit is more than 5 minutes in the future")
        if exited_at < self.oldest:
            raise Refusal("too_old", "exit is more than 30 days ago")


# Each mode's check returns (entry, exit, entered_at, exited_at, day, distance_m, line, steps).
Checked = tuple[str, str, datetime, datetime, date, int, str | None, int | None]


def _check_metro(get: Callable, ctx: Context) -> Checked:
    # The feed's hot path (most rows are metro's): written out, without the helpers' calls.
    entry, exit_ = _text(get("entry_station"), 8), _text(get("exit_station"), 8)
    if entry is None or exit_ is None:
        missing = [n for n in ("entry_station", "exit_station") if _text(get(n), 8) is None]
        raise Refusal("malformed", "missing, too long or not printable text: " + ", ".join(missing))
    try:
        entered_at, exited_at = parse_timestamp(get("entered_at")), parse_timestamp(get("exited_at"))
    except (TypeError, ValueError, OverflowError):
        raise Refusal("malformed", "entered_at and exited_at must be ISO 8601 times with an offset") from None
    stations = ctx.network.stations
    if entry not in stations or exit_ not in stations:
        raise Refusal("unknown_station", f"unknown station {exit_ if entry in stations else entry}")
    if entry == exit_:
        raise Refusal("same_station", "entry and exit are the same station")
    if exited_at <= entered_at:
        raise Refusal("bad_times", "exit is not after entry")
    if exited_at > ctx.latest or exited_at < ctx.oldest:
        ctx.in_window(exited_at)
    day = service_day(exited_at)
    distance = ctx.network.distance_m(entry, exit_, day)
    if distance is None:
        closed = exit_ if ctx.network.is_open(entry, day) else entry
        raise Refusal("station_not_open", f"station {closed} was not open on {day.isoformat()}")
    if distance * 3600 > MAX_KMH * 1000 * (exited_at - entered_at).total_seconds():
        raise Refusal("implausible_speed", f"{distance / 1000:.3f} km faster than {MAX_KMH} km/h")
    return entry, exit_, entered_at, exited_at, day, distance, None, None


def _speed(distance: int, start: datetime, end: datetime, limit: int) -> None:
    """Refuse an average speed above `limit` km/h."""
    if distance * 3600 > limit * 1000 * (end - start).total_seconds():
        raise Refusal("implausible_speed", f"{distance / 1000:.3f} km faster than {limit} km/h")


def _given_distance(value: object) -> int:
    """A distance in metres as a partner gives it."""
    metres = _whole(value, "distance_m")
    if not 0 < metres <= MAX_DISTANCE_M:
        raise Refusal("malformed", f"distance_m must be from 1 to {MAX_DISTANCE_M}")
    return metres


def _check_bus(get: Callable, ctx: Context) -> Checked:
    line = _text(get("line"), 16)
    if line is None:
        raise Refusal("malformed", "line is missing, too long or not printable")
    boarded_at = _moment(get("boarded_at"), "boarded_at")
    alighted = get("alighted_at")
    alighted_at = boarded_at if _absent(alighted) else _moment(alighted, "alighted_at")
    if not _absent(alighted) and alighted_at <= boarded_at:
        raise Refusal("bad_times", "alighting is not after boarding")
    given = get("distance_m")
    distance = None if _absent(given) else _given_distance(given)
    if line not in ctx.bus_lines:
        raise Refusal("unknown_line", f"unknown bus line {line}")
    ctx.in_window(alighted_at)
    if distance is None:
        distance = ctx.bus_lines[line] or ctx.bus_default_m
    elif alighted_at > boarded_at:
        _speed(distance, boarded_at, alighted_at, BUS_MAX_KMH)
    return "", "", boarded_at, alighted_at, service_day(alighted_at), distance, line, None


def _check_bike(get: Callable, ctx: Context) -> Checked:
    started_at, ended_at = _moment(get("started_at"), "started_at"), _moment(get("ended_at"), "ended_at")
    given = get("distance_m")
    if _absent(given):
        raise Refusal("missing_distance", "a bike ride needs distance_m")
    distance = _given_distance(given)
    if ended_at <= started_at:
        raise Refusal("bad_times", "end is not after start")
    ctx.in_window(ended_at)
    _speed(distance, started_at, ended_at, BIKE_MAX_KMH)
    return "", "", started_at, ended_at, service_day(ended_at), distance, None, None


def _check_walk(get: Callable, ctx: Context) -> Checked:
    raw_day = get("day")
    try:
        day = date.fromisoformat(raw_day.strip()) if raw_day.__class__ is str and len(raw_day.strip()) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise Refusal("malformed", "day must be a date, YYYY-MM-DD")
    steps = _whole(get("steps"), "steps")
    if steps > MAX_STEPS:
        raise Refusal("implausible_steps", f"{steps} steps in a day, more than {MAX_STEPS}")
    today = service_day(ctx.now)
    if day > today:
        raise Refusal("in_future", "the day has not begun")
    if day < service_day(ctx.oldest):
        raise Refusal("too_old", "the day is more than 30 days ago")
    # The day, from midnight to its last second: the walk counts after the day's rides under the cap.
    start = datetime(day.year, day.month, day.day, tzinfo=SERVICE_OFFSET)
    end = start + timedelta(days=1, seconds=-1)
    version = ctx.rules.version_for(end, TripMode.walk)
    return "", "", start, end, day, steps * version.mm_per_step // 1000, None, steps


CHECKS: dict[str, Callable[[Callable, Context], Checked]] = {
    TripMode.metro.value: _check_metro, TripMode.bus.value: _check_bus, TripMode.bike.value: _check_bike,
    TripMode.walk.value: _check_walk,
}


def check_rows(rows: Iterable[object], *, first_line: int, network: Network, rules: RuleBook, now: datetime,
               bus_lines: Mapping[str, int | None] | None = None,
               bus_default_m: int = 5000) -> tuple[list[tuple], list[Rejected], int]:
    """Split rows into staged tuples (STAGE_COLUMNS order), refusals with reasons, and in-batch repeats."""
    staged: list[tuple] = []
    rejected: list[Rejected] = []
    seen: set[tuple[str, str]] = set()
    repeats = 0
    ctx = Context(network, rules, bus_lines or {}, bus_default_m, now, now - MAX_AGE, now + MAX_AHEAD)
    fields = (("trip_id", 64), ("source", 32), ("rider_ref", 64))
    only_metro = rules.versions[0].id if len(rules.versions) == 1 else None

    for line_no, row in enumerate(rows, start=first_line):
        if not isinstance(row, Mapping):
            rejected.append(Rejected(line_no, "", "malformed", "a trip must be an object", row))
            continue
        get = row.get
        trip_id, source, rider_ref = _text(get("trip_id"), 64), _text(get("source"), 32), _text(get("rider_ref"), 64)
        try:
            if trip_id is None or source is None or rider_ref is None:
                missing = [name for name, limit in fields if _text(get(name), limit) is None]
                raise Refusal("malformed", "missing, too long or not printable text: " + ", ".join(missing))
            if not SOURCE_RE.match(source):
                raise Refusal("malformed", "source must be lower-case letters, digits, '_', '-' or '.'")
            mode = get("mode")
            if mode is None:
                mode, check = "metro", _check_metro
            else:
                mode = "metro" if _absent(mode) else mode.strip() if mode.__class__ is str else mode
                check = CHECKS.get(mode) if mode.__class__ is str else None
                if check is None:
                    raise Refusal("malformed", "mode must be metro, bus, bike or walk")
            entry, exit_, entered_at, exited_at, day, distance, line, steps = check(get, ctx)
        except Refusal as refusal:
            rejected.append(Rejected(line_no, trip_id or _shown_id(row), refusal.reason, refusal.detail, row))
            continue
        key = (source, trip_id)
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        version = only_metro if mode == "metro" and only_metro else rules.version_for(exited_at, TripMode(mode)).id
        staged.append((line_no, source, trip_id, rider_ref, entry, exit_, entered_at, exited_at, day, distance,
                       version, mode, line, steps))
    return staged, rejected, repeats
