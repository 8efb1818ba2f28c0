"""Campaign tests, and the builders they share."""

from __future__ import annotations

from datetime import timedelta

from metropoints.core.timeutil import utcnow

PASSWORD = "password123"
# Line 1 stations (shared/data/shenyang_metro/stations.csv).
STATION_A, STATION_B, STATION_C = "0109", "0114", "0101"


def form_data(stores, **overrides) -> dict:
    """A valid editor submission: a 20-yuan cash voucher for 400 points, on sale for a month from yesterday."""
    from metropoints.core.timeutil import SERVICE_ZONE

    start = (utcnow() - timedelta(days=1)).astimezone(SERVICE_ZONE)
    data = {"title": "Latte voucher", "description": "Any size.", "category": "dining", "benefit_type": "voucher",
            "face_value_yuan": "20", "discount_percent": "", "point_price": "400", "stock_total": "50",
            "per_rider_limit": "1", "valid_from": start.strftime("%Y-%m-%dT%H:%M"),
            "valid_until": (start + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M"), "coupon_valid_days": "14",
            "store_ids": [str(s.id) for s in stores], "terms": "One per visit."}
    data.update(overrides)
    return data


def page_text(client, path: str, method: str = "get", **kwargs) -> tuple[int, str]:
    """A page's status and English text (Babel's per-context locale dropped first)."""
    from flask_babel import refresh

    refresh()
    reply = getattr(client, method)(path, headers={"Accept-Language": "en"}, **kwargs)
    return reply.status_code, reply.get_data(as_text=True)
