"""A campaign as riders and kiosks will show it, before it is live (for its owner, and for the metro team on the
review pages): the catalogue item the rider app receives, built by `catalogue.catalog_item` and serialized through
the schema the API replies with, and what a kiosk's card draws from that same item.

The version shown is the one that would go on sale: the campaign's own fields, or, for an approved campaign with
changes under review, those changes (applied to a copy of the campaign that is never added to the session). A draft
shows as it stands: without an image yet, with a sale window already over, with no store left.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from metropoints.campaigns import catalogue
from metropoints.campaigns.models import RIDER_FIELDS, Campaign, CampaignRevision
from metropoints.campaigns.queries import active_stores, from_json, pending_revision
from metropoints.campaigns.schemas import CatalogItem
from metropoints.marketplace.models import Merchant, Store

KIOSK_STORES_SHOWN = 3  # a kiosk's card names this many stores, then "…" (kiosk.js, stationLine)


@dataclass(frozen=True)
class Preview:
    """What the preview shows: the campaign, the version riders would see with its catalogue item, and the revision
    that version comes from (None: the campaign as it stands)."""

    campaign: Campaign
    version: Campaign
    item: dict[str, Any]
    revision: CampaignRevision | None


def version_of(campaign: Campaign, revision: CampaignRevision | None) -> tuple[Campaign, list[Store]]:
    """The version to show and its active stores: the campaign itself, or a transient copy as the revision would
    make it (stock and status stay the campaign's: a revision does not change them)."""
    if revision is None:
        return campaign, catalogue.stores_of([campaign.id])[campaign.id]
    proposed = json.loads(revision.proposed_json)
    fields = {field: from_json(field, proposed[field]) if field in proposed else getattr(campaign, field)
              for field in RIDER_FIELDS if field != "store_ids"}
    version = Campaign(id=campaign.id, merchant_id=campaign.merchant_id, status=campaign.status,
                       stock_total=campaign.stock_total, stock_left=campaign.stock_left, **fields)
    return version, active_stores(proposed.get("store_ids") or [])


def rider_item(campaign: Campaign, merchant: Merchant, stores: Sequence[Store]) -> dict[str, Any]:
    """The catalogue item as the rider app receives it (the schema's JSON). One the schema would refuse, which the
    catalogue never lists (a campaign with no stock left), is shown as the catalogue builds it."""
    item = catalogue.catalog_item(campaign, merchant, stores)
    try:
        return CatalogItem.model_validate(item).model_dump(mode="json")
    except ValidationError:
        return item


def preview_of(campaign: Campaign, merchant: Merchant) -> Preview:
    """The preview of a campaign: with its changes under review, if it has some."""
    revision = pending_revision(campaign)
    version, stores = version_of(campaign, revision)
    return Preview(campaign=campaign, version=version, item=rider_item(version, merchant, stores), revision=revision)


def kiosk_stores_line(item: dict[str, Any]) -> str:
    """The stores as a kiosk's card names them: the first few, then "…"."""
    names = [store["name"] for store in item["stores"]]
    return " · ".join(names[:KIOSK_STORES_SHOWN]) + (" …" if len(names) > KIOSK_STORES_SHOWN else "")
