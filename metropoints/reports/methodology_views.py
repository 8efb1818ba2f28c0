"""The public page `/methodology`: how points and CO2e are computed, per mode and rule version, with the numbers and
the CO2e factor's source (accrual.methodology, the same as `GET /api/v1/methodology`), in the visitor's language."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import lazy_gettext as _l

from metropoints.accrual.methodology import methodology
from metropoints.accrual.models import TripMode
from metropoints.accrual.rules import DEFAULT_RULES, MODE_DEFAULTS
from metropoints.core.replica import stale_ok
from metropoints.core.timeutil import utcnow

bp = Blueprint("methodology", __name__)

MODE_LABELS = {TripMode.metro: _l("Metro"), TripMode.bus: _l("Bus"), TripMode.bike: _l("Shared bike"),
               TripMode.walk: _l("Walking")}
MODE_DISTANCES = {
    TripMode.metro: _l("The distance is the shortest track distance over the network between the entry and the exit "
                       "station, transfers free, through stations open on the trip's day."),
    TripMode.bus: _l("The distance is the one the fare system reports; without it, the line's average trip distance "
                     "set by the metro team; without that, the city's default."),
    TripMode.bike: _l("The distance is the one the shared-bike operator measured (GPS) for the ride."),
    TripMode.walk: _l("A rider's steps of a day, from a health app, count once whatever the number of apps: the "
                      "highest count of the day is the one credited."),
}
# What the platform itself seeded (accrual.rules and the green-modes migration), in the page's language; what
# operators typed is shown as they typed it. tests/reports/test_methodology.py holds each msgid to its text.
EARLIER_SOURCE = "recorded before factor sources were kept: see the factor name"
SEEDED_TEXTS = {
    DEFAULT_RULES["factor_name"]: _l("Shenyang Metro 2025: 1,900 t CO2e / 43 M points"),
    EARLIER_SOURCE: _l("recorded before factor sources were kept: see the factor name"),
    MODE_DEFAULTS[TripMode.metro]["factor_source"]: _l(
        "Shenyang Metro's carbon points programme, 2025: 1,900 t CO2e for 43 M points (one point a km)"),
    MODE_DEFAULTS[TripMode.bus]["factor_name"]: _l("Bus vs. city motorised baseline (platform default)"),
    MODE_DEFAULTS[TripMode.bus]["factor_source"]: _l(
        "Baseline-minus-mode method of Beijing DB11/T 3043-2024 (against the city's average motorised passenger-km); "
        "30 g/km is a provisional platform default, not a measured factor: operators replace it with a sourced one as "
        "a new rule version"),
    MODE_DEFAULTS[TripMode.bike]["factor_name"]: _l("Shared bike vs. city motorised baseline (platform default)"),
    MODE_DEFAULTS[TripMode.bike]["factor_source"]: _l(
        "Baseline-minus-mode method of Beijing DB11/T 3043-2024 (a bike ride emits nothing in use); 75 g/km is a "
        "provisional platform default, not a measured factor: operators replace it with a sourced one as a new rule "
        "version"),
    MODE_DEFAULTS[TripMode.walk]["factor_name"]: _l("Walking vs. city motorised baseline (platform default)"),
    MODE_DEFAULTS[TripMode.walk]["factor_source"]: _l(
        "Baseline-minus-mode method of Beijing DB11/T 3043-2024 (walking emits nothing in use); 75 g/km as for "
        "cycling and 0.7 m a step are provisional platform defaults, not measured: operators replace them with "
        "sourced ones as a new rule version"),
}


def seeded_text(text: str) -> str:
    """A factor's name or source in the page's language when the platform seeded it, else as it was typed."""
    return str(SEEDED_TEXTS.get(text, text))


@bp.get("/methodology")
@stale_ok
def page():
    """How points and CO2e are computed: per mode, every rule version (the one in force marked, later ones shown as
    scheduled) with its numbers and the factor's source. Public."""
    modes = methodology()
    return render_template("reports/methodology.html", modes=modes, now=utcnow(), labels=MODE_LABELS,
                           distances=MODE_DISTANCES, seeded_text=seeded_text)
