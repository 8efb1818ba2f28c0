"""The catalogue item as JSON (pydantic): the shape of `/api/v1/catalog` items and of the kiosk feed's campaigns,
declared once here, beside the catalogue that builds it (`catalogue.catalog_item`), so the rider API and the kiosk
read the same declaration."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from metropoints.campaigns.models import BenefitType, Campaign
from metropoints.core.schemas import ReplyBody, Timestamp, width
from metropoints.marketplace.models import Category


class CatalogMerchant(ReplyBody):
    """The merchant funding a campaign."""

    merchant_id: int
    name: str


class CatalogStore(ReplyBody):
    """A store where the coupon can be used, near a metro station."""

    store_id: int
    name: str
    address: str
    station_id: str


class CatalogItem(ReplyBody):
    """A live campaign: approved, within its sale window, with stock left, of an approved merchant."""

    campaign_id: int
    merchant: CatalogMerchant
    title: Annotated[str, StringConstraints(max_length=width(Campaign.title))]
    category: Category
    point_price: int = Field(ge=1, description="Points a coupon costs.")
    stock_left: int = Field(ge=1, description="Coupons left to sell.")
    per_rider_limit: int = Field(ge=1, description="Coupons one rider may hold from this campaign.")
    valid_from: Timestamp = Field(description="Start of the sale.")
    valid_until: Timestamp = Field(description="End of the sale (exclusive).")
    stores: list[CatalogStore]
    benefit_type: BenefitType
    face_value_fen: int | None = Field(description="A voucher's value in fen; null for other benefits.")
    discount_percent: int | None = Field(description="A discount's percentage; null for other benefits.")
    description: str
    terms: str = Field(description="Conditions of use.")
    coupon_valid_days: int = Field(ge=1, description="Days a coupon stays valid after redemption.")
    image_url: str | None = Field(description="The campaign's image (a path on this server), or null.")
