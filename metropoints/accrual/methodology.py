"""The published method (invariant 7): per mode and per rule version, how points and CO2e are computed, with the
numbers and the CO2e factor's name and source, as `GET /api/v1/methodology` and the page `/methodology` show it.

It reads the rule versions (a few rows a mode, never the trips). Versions not yet in force are published too, so a
change is known before it applies; a version's numbers never change (a trigger refuses it), so what is published for
a version stays true of every trip credited under it.

How a trip is computed under a version (accrual.rules):
- metro, bus, bike: km = the trip's distance (metro: the shortest track distance; bus: `distance_m`, else the line's
  average trip distance, else the city default; bike: the operator's distance); points = floor(km x points per km).
- walk: km = steps x metres per step / 1,000; points = floor((steps - threshold) x points per 1,000 steps / 1,000),
  nothing below the threshold; one walking day per rider, whatever the sources.
- every mode: grams CO2e = round(km x the factor in g/km); a rider's points of a service day stop at the daily cap
  across modes and, when the version has one, at the mode's own cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from metropoints.accrual.models import RuleVersion, TripMode
from metropoints.core.db import db


@dataclass(frozen=True, slots=True)
class PointsRule:
    """How a version turns a trip into points: per km, or (walking) per 1,000 steps above a daily threshold."""

    basis: str  # "km" or "steps"
    points_per_km: Decimal | None
    points_per_1000_steps: Decimal | None
    steps_threshold: int | None
    metres_per_step: Decimal | None  # walking: what a step is worth in distance (its km, and so its CO2e)


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    """One rule version of a mode, as published."""

    rule_version: int
    effective_from: datetime
    points_rule: PointsRule
    daily_cap: int
    mode_cap: int | None
    co2e_g_per_km: Decimal
    factor_name: str
    factor_source: str


@dataclass(frozen=True, slots=True)
class ModeMethod:
    """A mode and its rule versions, oldest first."""

    mode: TripMode
    versions: list[PublishedVersion]


def _thousandths(value: int) -> Decimal:
    """An integer number of thousandths as a decimal without trailing zeros."""
    return (Decimal(value) / 1000).normalize()


def points_rule(version: RuleVersion) -> PointsRule:
    """A version's points rule in its own unit."""
    if TripMode(version.mode) == TripMode.walk:
        return PointsRule("steps", None, _thousandths(version.points_per_1000_steps_milli), version.steps_threshold,
                          _thousandths(version.mm_per_step))
    return PointsRule("km", _thousandths(version.points_per_km_milli), None, None, None)


def published(version: RuleVersion) -> PublishedVersion:
    """One version as the method publishes it."""
    return PublishedVersion(rule_version=version.id, effective_from=version.effective_from,
                            points_rule=points_rule(version), daily_cap=version.daily_cap, mode_cap=version.mode_cap,
                            co2e_g_per_km=_thousandths(version.co2e_mg_per_km), factor_name=version.factor_name,
                            factor_source=version.factor_source)


def methodology() -> list[ModeMethod]:
    """Every mode (in the enum's order, a mode without versions with none), each with its versions oldest first."""
    by_mode: dict[TripMode, list[PublishedVersion]] = {mode: [] for mode in TripMode}
    for version in db.session.scalars(select(RuleVersion).order_by(RuleVersion.effective_from, RuleVersion.id)):
        by_mode[TripMode(version.mode)].append(published(version))
    return [ModeMethod(mode, versions) for mode, versions in by_mode.items()]
