"""The kiosk feed of API v1 (see the shared HTTP contract): GET /api/v1/kiosk/feed with a kiosk token."""

from __future__ import annotations

from flask import Blueprint, Response, request
from pydantic import Field, create_model

from metropoints.accrual.models import TripMode
from metropoints.campaigns.schemas import CatalogItem
from metropoints.core.api import bearer_value
from metropoints.core.models import TokenKind
from metropoints.core.openapi import Param, Reply, api_operation
from metropoints.core.replica import stale_ok
from metropoints.core.schemas import ReplyBody, Timestamp
from metropoints.kiosk.feed import CATALOG_LIMIT, current_feed
from metropoints.kiosk.operations import cached_kiosk_station

bp = Blueprint("kiosk_api", __name__, url_prefix="/api/v1/kiosk")

# Kiosks revalidate on every poll; the feed is per kiosk, so no shared cache may keep it.
CACHE_CONTROL = "private, no-cache"
ETAG = "Weak tag of the feed's content (everything but `generated_at`)."


class KioskStation(ReplyBody):
    """The kiosk's station."""

    station_id: str
    name_zh: str
    name_en: str


class CityMode(ReplyBody):
    """The city's credited and capped trips of one mode."""

    trips: int = Field(ge=0)
    km: float = Field(ge=0, json_schema_extra={"x-decimals": 3})
    co2e_tonnes: float = Field(ge=0, description="CO2e saved, in tonnes.", json_schema_extra={"x-decimals": 1})
    points: int = Field(ge=0, description="Points credited for these trips.")


# One key per mode (every mode, at zero without trips), from the models' own enum.
CityByMode = create_model("CityByMode", __base__=ReplyBody, __doc__="The city's figures per mode of travel.",
                          **{mode.value: (CityMode, ...) for mode in TripMode})


class CityFigures(ReplyBody):
    """The city's counter."""

    riders_total: int = Field(ge=0, description="Registered riders.")
    co2e_tonnes_total: float = Field(ge=0, description="CO2e saved by credited and capped trips, in tonnes.",
                                     json_schema_extra={"x-decimals": 1})
    points_total: int = Field(ge=0, description="Points credited for trips.")
    by_mode: CityByMode = Field(description="The same trips split by mode (the totals are their sums, before "
                                            "rounding).")


class KioskFeed(ReplyBody):
    """The feed (built and cached as JSON by kiosk/feed.py; tests/riders_api/test_contract.py holds it to this)."""

    station: KioskStation
    generated_at: Timestamp = Field(description="When this copy was made (not part of the ETag).")
    featured: list[CatalogItem] = Field(description="Live campaigns featured here, most recently featured first.")
    catalog: list[CatalogItem] = Field(max_length=CATALOG_LIMIT, description="The live catalogue, newest first.")
    city: CityFigures


@bp.get("/feed")
# The body is the station's cached JSON (kiosk/feed.py builds it, with catalogue items as /catalog has them).
@api_operation(token=TokenKind.kiosk, tag="kiosks",
               replies={200: Reply(KioskFeed, headers={"ETag": ETAG}),
                        304: Reply(description="Unchanged since the tag in `If-None-Match`; no body.",
                                   headers={"ETag": "The same tag."})},
               params=(Param("If-None-Match", str, "The `ETag` of the last feed read; a 304 when it is still "
                             "current.", location="header", invalid=False),))
def feed():
    """A station kiosk's feed: its station, the live campaigns featured there (most recently featured first), the
    live catalogue (newest first, capped) and the city's figures. The reply has a weak `ETag` over everything but
    `generated_at`, so it changes when the catalogue, the station's features or the city's figures change, and only
    then; `Cache-Control: private, no-cache`. `If-None-Match` with the current tag gets a 304 without a body."""
    rendered = stale_ok(current_feed)(cached_kiosk_station(bearer_value()))  # the token on the primary
    if request.if_none_match.contains_weak(rendered.etag):
        response = Response(status=304)
    else:
        response = Response(rendered.body, mimetype="application/json")
    # Weak: two replies with the same tag differ in `generated_at`, so they are equivalent, not byte-identical.
    response.set_etag(rendered.etag, weak=True)
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.vary.add("Authorization")
    return response
