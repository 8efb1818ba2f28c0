"""The kiosk feed's content and its ETag, as plain functions (no HTTP objects here).

The feed of a kiosk: its station, the live campaigns featured at that station, the whole live catalogue (newest
first, capped), and the city's figures. The ETag hashes everything but `generated_at`, so it changes when the
catalogue, the featuring or the city's figures change, and only then; kiosks poll with If-None-Match and redraw
only on a change.

Kiosks read the feed through a cache of each station's rendered feed (JSON bytes and ETag), kept
KIOSK_FEED_TTL_SECONDS (default 5) from when it was built: a change shows on the kiosks within that time, and the
ETag of a poll in between is the cached one, so a revalidation needs no building at all. `generated_at` is when the
served copy was built. The feed holds nothing secret (the catalogue is public), so one copy serves every kiosk of a
station.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from metropoints.accrual.queries import city_totals_by_mode
from metropoints.campaigns import catalogue
from metropoints.campaigns.models import Campaign
from metropoints.core.db import db
from metropoints.core.models import RiderDay, Station
from metropoints.core.timeutil import isoformat, utcnow
from metropoints.kiosk.cache import Codec, TtlCache, app_cache
from metropoints.kiosk.models import Kiosk

# A kiosk shows at most this many campaigns of the catalogue (newest first); featured ones always come in full.
CATALOG_LIMIT = 100
GRAMS_PER_TONNE = 1_000_000
DEFAULT_FEED_TTL_SECONDS = 5.0


# The city's figures sum the rollups' rows (one per service day and rule version): one computation serves every
# station's feed for this long, so the 30 stations' caches expiring every few seconds cost one such sum a minute.
DEFAULT_CITY_TTL_SECONDS = 60.0


def city_cache() -> TtlCache[dict[str, Any]]:
    """The app's cache of the city's figures (in Redis too when REDIS_URL is set)."""
    return app_cache("kiosk-city", ttl_setting="KIOSK_CITY_TTL_SECONDS", default_ttl=DEFAULT_CITY_TTL_SECONDS,
                     codec=Codec(encode=lambda figures: json.dumps(figures).encode(), decode=json.loads))


def city_figures() -> dict[str, Any]:
    """The city's counter, as every station's feed shows it (cached, see DEFAULT_CITY_TTL_SECONDS)."""
    return city_cache().get("city", lambda: (compute_city_figures(), None))


def compute_city_figures() -> dict[str, Any]:
    """The city's counter: registered riders (the back office's KPI), tonnes CO2e saved by credited and capped
    trips (1 decimal) and points credited for trips, and per mode the trips, km, tonnes and points; read from the
    rollups, a row per service day (and mode and rule version): one query for the trips' figures, the totals being
    the modes' sums."""
    by_mode = city_totals_by_mode()
    totals = {key: sum(figures[key] for figures in by_mode.values()) for key in ("co2e_grams", "points")}
    riders = db.session.scalar(select(func.sum(RiderDay.registered)))
    return {"riders_total": int(riders or 0),
            "co2e_tonnes_total": round(totals["co2e_grams"] / GRAMS_PER_TONNE, 1),
            "points_total": totals["points"],
            "by_mode": {mode.value: {"trips": figures["trips"], "km": round(figures["metres"] / 1000, 3),
                                     "co2e_tonnes": round(figures["co2e_grams"] / GRAMS_PER_TONNE, 1),
                                     "points": figures["points"]}
                        for mode, figures in by_mode.items()}}


def station_item(station: Station) -> dict[str, str]:
    """A station as the feed names it."""
    return {"station_id": station.station_id, "name_zh": station.name_zh, "name_en": station.name_en}


def kiosk_feed(kiosk: Kiosk, *, now: datetime | None = None) -> dict[str, Any]:
    """The feed of one kiosk: its station's feed."""
    return station_feed(kiosk.station_id, now=now)


def station_feed(station_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The feed of a station's kiosks, in the contract's field order. Three catalogue queries whatever the
    catalogue's size (featured, catalogue, all their stores at once) and the city's totals."""
    now = now or utcnow()
    station = db.session.get(Station, station_id)
    featured_rows = catalogue.featured_for_station(station_id, now=now)
    catalog_rows = db.session.execute(catalogue.live_campaigns(now=now).order_by(Campaign.id.desc())
                                      .limit(CATALOG_LIMIT)).tuples().all()
    stores = catalogue.stores_of([c.id for c, _ in featured_rows] + [c.id for c, _ in catalog_rows])
    return {
        "station": station_item(station),
        "generated_at": isoformat(now),
        "featured": [catalogue.catalog_item(c, m, stores[c.id]) for c, m in featured_rows],
        "catalog": [catalogue.catalog_item(c, m, stores[c.id]) for c, m in catalog_rows],
        "city": city_figures(),
    }


def feed_etag(feed: dict[str, Any]) -> str:
    """The feed's entity tag: SHA-256 of the canonical JSON of everything but `generated_at`."""
    content = {key: value for key, value in feed.items() if key != "generated_at"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class RenderedFeed:
    """A feed as it goes out: its JSON (UTF-8) and its entity tag."""

    etag: str
    body: bytes


def render_feed(station_id: str, *, now: datetime | None = None) -> RenderedFeed:
    """A station's feed, built now, as JSON bytes with its ETag."""
    content = station_feed(station_id, now=now)
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    return RenderedFeed(etag=feed_etag(content), body=body)


def encode_feed(feed: RenderedFeed) -> bytes:
    """A rendered feed as Redis keeps it: the ETag (hex, no newline), a newline, the body."""
    return feed.etag.encode() + b"\n" + feed.body


def decode_feed(raw: bytes) -> RenderedFeed:
    """A rendered feed back from Redis."""
    etag, _, body = raw.partition(b"\n")
    return RenderedFeed(etag=etag.decode(), body=body)


def feed_cache() -> TtlCache[RenderedFeed]:
    """The app's cache of rendered feeds by station (in Redis too when REDIS_URL is set)."""
    return app_cache("kiosk-feed", ttl_setting="KIOSK_FEED_TTL_SECONDS", default_ttl=DEFAULT_FEED_TTL_SECONDS,
                     codec=Codec(encode=encode_feed, decode=decode_feed))


def current_feed(station_id: str) -> RenderedFeed:
    """The station's feed as kiosks get it: the cached copy while it is younger than the TTL, else built anew."""
    return feed_cache().get(station_id, lambda: (render_feed(station_id), None))
