"""The live catalogue: the one query module the rider API, the kiosk feed and the portal's badges read.

Live = approved AND valid_from <= now < valid_until AND stock_left > 0 AND the merchant is approved; so a suspended
merchant's campaigns leave the catalogue at once, and "sold out" needs no stored status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from flask import url_for
from sqlalchemy import ColumnElement, Select, and_, select

from metropoints.campaigns.models import Campaign, CampaignFeature, CampaignStatus, CampaignStore
from metropoints.core.db import db
from metropoints.core.timeutil import isoformat, utcnow
from metropoints.marketplace.models import Category, Merchant, MerchantStatus, Store


def live_condition(now: datetime | None = None) -> ColumnElement[bool]:
    """The SQL condition "on sale now" over Campaign joined with its Merchant."""
    now = now or utcnow()
    return and_(Campaign.status == CampaignStatus.approved, Campaign.valid_from <= now, Campaign.valid_until > now,
                Campaign.stock_left > 0, Merchant.status == MerchantStatus.approved)


def live_campaigns(*, category: Category | str | None = None, station_id: str | None = None,
                   now: datetime | None = None) -> Select:
    """(Campaign, Merchant) rows on sale now, unordered (keyset pages order them by Campaign.id). `station_id` keeps
    the campaigns valid at an active store near that station."""
    query = (select(Campaign, Merchant).join(Merchant, Merchant.id == Campaign.merchant_id)
             .where(live_condition(now)))
    if category is not None:
        query = query.where(Campaign.category == Category(category))
    if station_id is not None:
        near = (select(CampaignStore.campaign_id).join(Store, Store.id == CampaignStore.store_id)
                .where(Store.station_id == station_id, Store.active))
        query = query.where(Campaign.id.in_(near))
    return query


def live_campaign(campaign_id: int, now: datetime | None = None) -> Campaign | None:
    """The campaign if it is on sale now (its merchant is then in the session too), else None."""
    row = db.session.execute(live_campaigns(now=now).where(Campaign.id == campaign_id)).first()
    return row[0] if row else None


def featured_for_station(station_id: str, now: datetime | None = None) -> list[tuple[Campaign, Merchant]]:
    """Live campaigns featured on that station's kiosks, most recently featured first."""
    query = (live_campaigns(now=now).join(CampaignFeature, CampaignFeature.campaign_id == Campaign.id)
             .where(CampaignFeature.station_id == station_id)
             .order_by(CampaignFeature.created_at.desc(), Campaign.id.desc()))
    return [(campaign, merchant) for campaign, merchant in db.session.execute(query)]


def stores_of(campaign_ids: Iterable[int]) -> dict[int, list[Store]]:
    """The active stores of each campaign, in one query (no query per campaign)."""
    ids = list(set(campaign_ids))
    found: dict[int, list[Store]] = {cid: [] for cid in ids}
    if not ids:
        return found
    rows = db.session.execute(select(CampaignStore.campaign_id, Store).join(Store, Store.id == CampaignStore.store_id)
                              .where(CampaignStore.campaign_id.in_(ids), Store.active).order_by(Store.id))
    for campaign_id, store in rows:
        found[campaign_id].append(store)
    return found


def catalog_item(campaign: Campaign, merchant: Merchant, stores: Sequence[Store]) -> dict[str, Any]:
    """A campaign as the contract's catalogue item, with the benefit's details and image after the contract's
    fields."""
    return {
        "campaign_id": campaign.id,
        "merchant": {"merchant_id": merchant.id, "name": merchant.name},
        "title": campaign.title,
        "category": campaign.category.value,
        "point_price": campaign.point_price,
        "stock_left": campaign.stock_left,
        "per_rider_limit": campaign.per_rider_limit,
        "valid_from": isoformat(campaign.valid_from),
        "valid_until": isoformat(campaign.valid_until),
        "stores": [{"store_id": s.id, "name": s.name, "address": s.address, "station_id": s.station_id}
                   for s in stores],
        "benefit_type": campaign.benefit_type.value,
        "face_value_fen": campaign.face_value_fen,
        "discount_percent": campaign.discount_percent,
        "description": campaign.description,
        "terms": campaign.terms,
        "coupon_valid_days": campaign.coupon_valid_days,
        "image_url": url_for("campaigns.image", name=campaign.image_name) if campaign.image_name else None,
    }


def catalog_items(rows: Sequence[tuple[Campaign, Merchant]]) -> list[dict[str, Any]]:
    """(Campaign, Merchant) rows as catalogue items, their stores fetched in one query."""
    stores = stores_of(campaign.id for campaign, _ in rows)
    return [catalog_item(campaign, merchant, stores[campaign.id]) for campaign, merchant in rows]


def badge(campaign: Campaign, merchant: Merchant, now: datetime | None = None) -> str:
    """The derived state shown in the portal: the stored status, or for an approved campaign one of "live",
    "sold_out", "scheduled", "expired", "merchant_suspended"."""
    if campaign.status != CampaignStatus.approved:
        return campaign.status.value
    now = now or utcnow()
    if merchant.status != MerchantStatus.approved:
        return "merchant_suspended"
    if now < campaign.valid_from:
        return "scheduled"
    if now >= campaign.valid_until:
        return "expired"
    return "live" if campaign.stock_left > 0 else "sold_out"
