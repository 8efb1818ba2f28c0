"""Accrual rule versions per mode: points per km (walking: per 1,000 steps above a threshold), the daily cap across
modes and an optional cap per mode, the CO2e factor with its name and source; each in force from a moment on."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import select

from metropoints.accrual.errors import BadRule
from metropoints.accrual.models import RuleVersion, TripMode
from metropoints.core.db import db
from metropoints.core.operations import record_audit
from metropoints.core.timeutil import utcnow

# The version a fresh database starts with (DESIGN: 1 point per km, 60 a day, 44 g/km).
DEFAULT_RULES = {
    "points_per_km_milli": 1000,
    "daily_cap": 60,
    "co2e_mg_per_km": 44_000,
    "factor_name": "Shenyang Metro 2025: 1,900 t CO2e / 43 M points",
    "effective_from": datetime(2010, 1, 1, tzinfo=UTC),
}
# The first versions of the other modes, as the green-modes migration seeds them (its docstring says why these).
MODE_DEFAULTS: dict[TripMode, dict] = {
    TripMode.metro: {**DEFAULT_RULES, "factor_source": "Shenyang Metro's carbon points programme, 2025: 1,900 t "
                                                       "CO2e for 43 M points (one point a km)"},
    TripMode.bus: {
        "points_per_km_milli": 1000, "daily_cap": 60, "co2e_mg_per_km": 30_000,
        "factor_name": "Bus vs. city motorised baseline (platform default)",
        "factor_source": "Baseline-minus-mode method of Beijing DB11/T 3043-2024 (against the city's average "
                         "motorised passenger-km); 30 g/km is a provisional platform default, not a measured factor: "
                         "operators replace it with a sourced one as a new rule version"},
    TripMode.bike: {
        "points_per_km_milli": 1000, "daily_cap": 60, "co2e_mg_per_km": 75_000,
        "factor_name": "Shared bike vs. city motorised baseline (platform default)",
        "factor_source": "Baseline-minus-mode method of Beijing DB11/T 3043-2024 (a bike ride emits nothing in use); "
                         "75 g/km is a provisional platform default, not a measured factor: operators replace it with "
                         "a sourced one as a new rule version"},
    TripMode.walk: {
        "points_per_km_milli": 0, "daily_cap": 60, "mode_cap": 10, "co2e_mg_per_km": 75_000,
        "steps_threshold": 3000, "points_per_1000_steps_milli": 1000, "mm_per_step": 700,
        "factor_name": "Walking vs. city motorised baseline (platform default)",
        "factor_source": "Baseline-minus-mode method of Beijing DB11/T 3043-2024 (walking emits nothing in use); 75 "
                         "g/km as for cycling and 0.7 m a step are provisional platform defaults, not measured: "
                         "operators replace them with sourced ones as a new rule version"},
}
START = datetime(2010, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ModeBook:
    """One mode's rule versions, ordered, to pick the one in force at a trip's exit without a query per trip."""

    starts: tuple[datetime, ...]
    versions: tuple[RuleVersion, ...]

    def version_for(self, moment: datetime) -> RuleVersion:
        """The version in force at `moment` (the first one for anything earlier than all of them)."""
        index = bisect.bisect_right(self.starts, moment) - 1
        return self.versions[max(index, 0)]


@dataclass(slots=True)
class RuleBook:
    """Every mode's rule versions. A mode without any gets its default version the first time a trip needs it
    (a fresh or emptied table; the migration seeds them)."""

    modes: dict[TripMode, ModeBook]

    @property
    def versions(self) -> tuple[RuleVersion, ...]:
        """Metro's versions (what the metro-only callers read)."""
        return self.mode(TripMode.metro).versions

    def mode(self, mode: TripMode) -> ModeBook:
        """The book of one mode, made with its default version if it has none."""
        book = self.modes.get(mode)
        if book is None:
            version = ensure_default_rules(mode)
            book = self.modes[mode] = ModeBook((version.effective_from,), (version,))
        return book

    def version_for(self, moment: datetime, mode: TripMode = TripMode.metro) -> RuleVersion:
        """The version of `mode` in force at `moment`."""
        return self.mode(mode).version_for(moment)


def load_rulebook() -> RuleBook:
    """Read the rule versions; there is always at least metro's seeded default."""
    by_mode: dict[TripMode, list[RuleVersion]] = {}
    for version in db.session.scalars(select(RuleVersion).order_by(RuleVersion.effective_from)):
        by_mode.setdefault(TripMode(version.mode), []).append(version)
    if TripMode.metro not in by_mode:
        by_mode[TripMode.metro] = [ensure_default_rules()]
    return RuleBook({mode: ModeBook(tuple(v.effective_from for v in versions), tuple(versions))
                     for mode, versions in by_mode.items()})


def ensure_default_rules(mode: TripMode = TripMode.metro) -> RuleVersion:
    """Create the mode's default version when it has none; return its first version."""
    first = db.session.scalar(select(RuleVersion).where(RuleVersion.mode == mode)
                              .order_by(RuleVersion.effective_from).limit(1))
    if first is None:
        first = RuleVersion(mode=mode, created_by="default", effective_from=START,
                            note="default rules from the design" if mode == TripMode.metro
                            else "default rules of the mode",
                            **{k: v for k, v in MODE_DEFAULTS[mode].items() if k != "effective_from"})
        db.session.add(first)
        db.session.flush()
    return first


def current_rules() -> RuleVersion:
    """The version in force now."""
    return load_rulebook().version_for(utcnow())


def _milli(value: str | int | float | Decimal, name: str, limit: int) -> int:
    """A decimal with up to three places, as an integer number of thousandths."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise BadRule(f"{name} must be a number.", field=name) from None
    if not number.is_finite() or number < 0 or number > limit:
        raise BadRule(f"{name} must be between 0 and {limit}.", field=name)
    if number != number.quantize(Decimal("0.001")):
        raise BadRule(f"{name} takes at most three decimals.", field=name)
    return int((number * 1000).to_integral_value(ROUND_HALF_UP))


def create_rule_version(*, points_per_km: str | float, daily_cap: int, co2e_factor_g_per_km: str | float,
                        factor_name: str, actor_label: str, effective_from: datetime | None = None,
                        note: str = "", mode: TripMode | str = TripMode.metro, mode_cap: int | None = None,
                        factor_source: str = "", steps_threshold: int = 0, points_per_1000_steps: str | float = 0,
                        metres_per_step: str | float = 0, actor=None) -> RuleVersion:
    """Add a version of one mode's rules in force from `effective_from` (default now). Credits already made keep
    their version.

    A version may not start in the past: trips already credited were computed with the version then in force.
    `daily_cap` limits a rider's day across every mode; `mode_cap` (optional) this mode's points of the day.
    """
    try:
        mode = TripMode(mode)
    except ValueError:
        raise BadRule("mode must be metro, bus, bike or walk.", field="mode") from None
    now = utcnow()
    start = effective_from or now
    if start.tzinfo is None:
        raise BadRule("effective_from needs a time zone.", field="effective_from")
    if start < now - timedelta(minutes=1):
        raise BadRule("A rule version cannot start in the past.", field="effective_from")
    latest = db.session.scalar(select(RuleVersion.effective_from).where(RuleVersion.mode == mode)
                               .order_by(RuleVersion.effective_from.desc()).limit(1))
    if latest is not None and start <= latest:
        raise BadRule("A rule version must start after the latest one.", field="effective_from")
    _whole(daily_cap, "daily_cap")
    if mode_cap is not None:
        _whole(mode_cap, "mode_cap")
    _whole(steps_threshold, "steps_threshold", limit=50_000)
    if not factor_name or not factor_name.strip():
        raise BadRule("Name the source of the CO2e factor.", field="factor_name")
    if len(factor_name.strip()) > 120 or len((factor_source or "").strip()) > 255:
        raise BadRule("The factor's name takes at most 120 characters, its source 255.", field="factor_source")
    walking = mode == TripMode.walk
    version = RuleVersion(
        mode=mode,
        points_per_km_milli=0 if walking else _milli(points_per_km, "points_per_km", 1000),
        daily_cap=daily_cap,
        mode_cap=mode_cap,
        co2e_mg_per_km=_milli(co2e_factor_g_per_km, "co2e_factor", 10_000),
        factor_name=factor_name.strip(),
        factor_source=(factor_source or "").strip(),
        steps_threshold=steps_threshold if walking else 0,
        points_per_1000_steps_milli=_milli(points_per_1000_steps, "points_per_1000_steps", 1000) if walking else 0,
        mm_per_step=_milli(metres_per_step, "metres_per_step", 3) if walking else 0,
        effective_from=start,
        created_by=actor_label,
        note=note,
    )
    if walking and version.mm_per_step == 0:
        raise BadRule("Walking needs the metres of a step.", field="metres_per_step")
    db.session.add(version)
    db.session.flush()
    record_audit(actor=actor, actor_label=actor_label, action="rules.new_version",
                 subject=f"rule_version:{version.id}",
                 reason=note or f"{points_per_km} pt/km, cap {daily_cap}, {co2e_factor_g_per_km} g/km ({factor_name})")
    return version


def _whole(value: object, name: str, limit: int = 100_000) -> None:
    """A whole number from 0 to `limit`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise BadRule(f"{name} must be a whole number from 0 to {limit}.", field=name)


def describe(version: RuleVersion) -> str:
    """One line for the operator."""
    mode = TripMode(version.mode)
    if mode == TripMode.walk:
        earns = (f"{Decimal(version.points_per_1000_steps_milli) / 1000} pt per 1,000 steps above "
                 f"{version.steps_threshold}, {Decimal(version.mm_per_step) / 1000} m a step")
    else:
        earns = f"{Decimal(version.points_per_km_milli) / 1000} pt/km"
    mode_cap = f", {mode.value} cap {version.mode_cap}/day" if version.mode_cap is not None else ""
    prefix = "" if mode == TripMode.metro else f"{mode.value} "
    return (f"{prefix}v{version.id} from {version.effective_from.isoformat()}: {earns}, cap {version.daily_cap}/day"
            f"{mode_cap}, {Decimal(version.co2e_mg_per_km) / 1000} g CO2e/km ({version.factor_name})")
