"""GET /api/v1/methodology (no token): the published method, per mode and rule version (accrual.methodology), and
its JSON shape, declared once beside the view."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint
from pydantic import Field

from metropoints.accrual.methodology import ModeMethod, PointsRule, PublishedVersion, methodology
from metropoints.accrual.models import TripMode
from metropoints.core.openapi import api_operation
from metropoints.core.replica import stale_ok
from metropoints.core.schemas import ReplyBody, Timestamp

bp = Blueprint("carbon_api", __name__, url_prefix="/api/v1")


class PointsRuleBody(ReplyBody):
    """How points are computed: per km (metro, bus, bike) or, walking, per 1,000 steps above a daily threshold."""

    basis: Literal["km", "steps"]
    points_per_km: float | None = Field(ge=0, description="basis `km`: points = floor(km x points_per_km).")
    points_per_1000_steps: float | None = Field(
        ge=0, description="basis `steps`: points = floor((steps - steps_threshold) x points_per_1000_steps / 1000), "
                          "0 below the threshold.")
    steps_threshold: int | None = Field(ge=0, description="basis `steps`: the steps a day that earn nothing.")
    metres_per_step: float | None = Field(ge=0, description="basis `steps`: km = steps x metres_per_step / 1000, "
                                                            "which the CO2e factor multiplies.")

    @classmethod
    def of(cls, rule: PointsRule) -> PointsRuleBody:
        """A version's points rule."""
        def number(value):
            return float(value) if value is not None else None

        return cls(basis=rule.basis, points_per_km=number(rule.points_per_km),
                   points_per_1000_steps=number(rule.points_per_1000_steps), steps_threshold=rule.steps_threshold,
                   metres_per_step=number(rule.metres_per_step))


class VersionBody(ReplyBody):
    """One rule version of a mode; a trip is computed with the version of its mode in force at its exit."""

    rule_version: int = Field(description="The id trips name as their `rule_version`.")
    effective_from: Timestamp = Field(description="In force from this moment until the next version's.")
    points_rule: PointsRuleBody
    daily_cap: int = Field(ge=0, description="At most this many points a rider and service day, across all modes.")
    mode_cap: int | None = Field(ge=0, description="At most this many points a rider and service day from this "
                                                   "mode; null: only the daily cap.")
    co2e_g_per_km: float = Field(ge=0, description="grams CO2e = round(km x co2e_g_per_km).")
    factor_name: str = Field(description="What the CO2e factor is.")
    factor_source: str = Field(description="Where the CO2e factor comes from (empty: see the factor's name).")

    @classmethod
    def of(cls, version: PublishedVersion) -> VersionBody:
        """A published version."""
        return cls(rule_version=version.rule_version, effective_from=version.effective_from,
                   points_rule=PointsRuleBody.of(version.points_rule), daily_cap=version.daily_cap,
                   mode_cap=version.mode_cap, co2e_g_per_km=float(version.co2e_g_per_km),
                   factor_name=version.factor_name, factor_source=version.factor_source)


class ModeBody(ReplyBody):
    """A mode of travel and its rule versions, oldest first."""

    mode: TripMode
    versions: list[VersionBody]

    @classmethod
    def of(cls, method: ModeMethod) -> ModeBody:
        """A mode's published versions."""
        return cls(mode=method.mode, versions=[VersionBody.of(v) for v in method.versions])


class Methodology(ReplyBody):
    """How points and CO2e are computed, per mode and rule version."""

    modes: list[ModeBody] = Field(description="Every mode, metro first.")


@bp.get("/methodology")
@api_operation(replies={200: Methodology}, tag="carbon")
@stale_ok
def get_methodology():
    """The published method: for every mode, each rule version (those not yet in force too) with its points rule,
    caps, CO2e factor and the factor's source. Public."""
    return Methodology(modes=[ModeBody.of(method) for method in methodology()])
