"""The kiosk feed's content and its ETag, as plain functions (no HTTP objects here).

The feed of a kiosk: its station, the live campaigns featured at that station, the whole live catalogue (newest
first, capped), and the city's figures. The ETag hashes everything but `generated_at`, so it changes when the
catalogue, the featuring or the city's figures change, and only then; kiosks poll with If-None-Match and redraw
only on a change.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from metropoints.accrual.queries import city_totals
from metropoints.campaigns import catalogue
from metropoints.campaigns.models import Campaign
from metropoints.core.db import db
from metropoints.core.models import Kiosk, Rider, Station
from metropoints.core.timeutil import isoformat, utcnow

# A kiosk shows at most this many campaigns of the catalogue (newest first); featured ones always come in full.
CATALOG_LIMIT = 100
GRAMS_PER_TONNE = 1_000_000


def city_figures() -> dict[str, Any]:
    """The city's counter: registered riders (the back office's KPI), tonnes CO2e saved by credited and capped
    trips (1 decimal) and points credited for trips."""
    totals = city_totals()
    riders = db.session.scalar(select(func.count(Rider.id)))
    return {"riders_total": int(riders or 0),
            "co2e_tonnes_total": round(totals["co2e_grams"] / GRAMS_PER_TONNE, 1),
            "points_total": totals["points"]}


def station_item(station: Station) -> dict[str, str]:
    """A station as the feed names it."""
    return {"station_id": station.station_id, "name_zh": station.name_zh, "name_en": station.name_en}


def kiosk_feed(kiosk: Kiosk, *, now: datetime | None = None) -> dict[str, Any]:
    """The feed of one kiosk, in the contract's field order. Three catalogue queries whatever the catalogue's
    size (featured, catalogue, all their stores at once) and the city's totals."""
    now = now or utcnow()
    station = db.session.get(Station, kiosk.station_id)
    featured_rows = catalogue.featured_for_station(kiosk.station_id, now=now)
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
