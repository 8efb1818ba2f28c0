"""The kiosk feed of API v1 (see the shared HTTP contract): GET /api/v1/kiosk/feed with a kiosk token."""

from __future__ import annotations

from flask import Blueprint, Response, request

from metropoints.core.errors import Unauthorized
from metropoints.kiosk.feed import current_feed
from metropoints.kiosk.operations import cached_kiosk_station

bp = Blueprint("kiosk_api", __name__, url_prefix="/api/v1/kiosk")

# Kiosks revalidate on every poll; the feed is per kiosk, so no shared cache may keep it.
CACHE_CONTROL = "private, no-cache"


def raw_bearer_token() -> str:
    """The raw value of this request's `Authorization: Bearer` header (401 `unauthorized` without one)."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized()
    return raw.strip()


@bp.get("/feed")
def feed():
    """The kiosk's station, its featured campaigns, the live catalogue and the city's figures, with an ETag;
    If-None-Match with the current ETag gets a 304 without a body. Both come from the station's cached feed (see
    kiosk/feed.py and, for the token, kiosk/operations.py)."""
    rendered = current_feed(cached_kiosk_station(raw_bearer_token()))
    if request.if_none_match.contains_weak(rendered.etag):
        response = Response(status=304)
    else:
        response = Response(rendered.body, mimetype="application/json")
    # Weak: two replies with the same tag differ in `generated_at`, so they are equivalent, not byte-identical.
    response.set_etag(rendered.etag, weak=True)
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.vary.add("Authorization")
    return response
