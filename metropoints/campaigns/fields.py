"""What a campaign's fields may be: the editor's checks and normalisation (one refusal per field, named so a form can
show it there), the configured point price range, and the rule that a sale already over is refused at save, submit
and approval. Read by the operations and the editor's form alike."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l

from metropoints.campaigns.errors import InvalidCampaign
from metropoints.campaigns.models import BenefitType
from metropoints.campaigns.queries import merchant_stores
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Category, Merchant

# Point price bounds, overridable in the app config (FLASK_CAMPAIGN_... in the environment). A voucher's price is
# bounded per yuan of its face value, so a 20-yuan voucher costs 100..4,000 points by default; discounts and free
# items have no face value to scale by and get a plain range.
DEFAULT_PRICE_SETTINGS = {
    "CAMPAIGN_POINTS_PER_YUAN_MIN": 5,
    "CAMPAIGN_POINTS_PER_YUAN_MAX": 200,
    "CAMPAIGN_POINT_PRICE_MIN": 10,
    "CAMPAIGN_POINT_PRICE_MAX": 100_000,
}
MAX_STOCK = 1_000_000
MAX_FACE_VALUE_FEN = 1_000_000  # 10,000 yuan
MAX_COUPON_DAYS = 365


def _setting(name: str) -> int:
    """A price setting from the app config, or its default."""
    return int(current_app.config.get(name, DEFAULT_PRICE_SETTINGS[name]))


def point_price_range(benefit_type: BenefitType | str, face_value_fen: int | None) -> tuple[int, int]:
    """The allowed point price (lowest, highest): per yuan of face value for vouchers, a plain range otherwise."""
    if benefit_type == BenefitType.voucher and face_value_fen and face_value_fen > 0:
        low = math.ceil(face_value_fen * _setting("CAMPAIGN_POINTS_PER_YUAN_MIN") / 100)
        high = face_value_fen * _setting("CAMPAIGN_POINTS_PER_YUAN_MAX") // 100
        return max(1, low), max(1, high)
    return _setting("CAMPAIGN_POINT_PRICE_MIN"), _setting("CAMPAIGN_POINT_PRICE_MAX")


def _int(data: dict[str, Any], field: str, low: int, high: int, message: Any) -> int:
    """An integer field within [low, high], or an InvalidCampaign on that field."""
    value = data.get(field)
    if type(value) is not int or not low <= value <= high:
        raise InvalidCampaign(message, field=field)
    return value


def sale_over(valid_until: datetime, now: datetime | None = None) -> bool:
    """Whether a sale window ending at `valid_until` is entirely in the past."""
    return valid_until <= (now or utcnow())


def refuse_ended_sale(valid_until: datetime, now: datetime | None = None) -> None:
    """A sale window entirely in the past sells nothing: InvalidCampaign on `valid_until` (save, submit, approve)."""
    if sale_over(valid_until, now):
        raise InvalidCampaign(_l("The sale would already be over: choose an end in the future."), field="valid_until")


def validate_fields(*, merchant: Merchant, data: dict[str, Any], with_stock: bool = True,
                    now: datetime | None = None) -> dict[str, Any]:
    """The campaign fields checked and normalised; the first field that makes no sense raises InvalidCampaign."""
    clean: dict[str, Any] = {}
    title = (data.get("title") or "").strip()
    if not 0 < len(title) <= 80:
        raise InvalidCampaign(_l("The title must have 1 to 80 characters."), field="title")
    clean["title"] = title
    clean["description"] = (data.get("description") or "").strip()
    clean["terms"] = (data.get("terms") or "").strip()
    try:
        clean["category"] = Category(data.get("category"))
    except ValueError:
        raise InvalidCampaign(_l("Choose a category."), field="category") from None
    try:
        benefit = clean["benefit_type"] = BenefitType(data.get("benefit_type"))
    except ValueError:
        raise InvalidCampaign(_l("Choose a benefit type."), field="benefit_type") from None
    clean["face_value_fen"] = clean["discount_percent"] = None
    if benefit == BenefitType.voucher:
        clean["face_value_fen"] = _int(data, "face_value_fen", 1, MAX_FACE_VALUE_FEN,
                                       _l("A cash voucher needs a face value of 0.01 to 10,000 yuan."))
    elif benefit == BenefitType.discount:
        clean["discount_percent"] = _int(data, "discount_percent", 1, 99, _l("A discount is 1 to 99 percent."))
    low, high = point_price_range(benefit, clean["face_value_fen"])
    clean["point_price"] = _int(data, "point_price", low, high,
                                _l("For this benefit the point price must be between %(low)s and %(high)s.",
                                   low=low, high=high))
    if with_stock:
        clean["stock_total"] = _int(data, "stock_total", 1, MAX_STOCK, _l("The stock must be at least 1."))
    clean["per_rider_limit"] = _int(data, "per_rider_limit", 1, 1000, _l("The per-rider limit must be at least 1."))
    clean["coupon_valid_days"] = _int(data, "coupon_valid_days", 1, MAX_COUPON_DAYS,
                                      _l("Coupons must be valid for 1 to 365 days."))
    valid_from, valid_until = data.get("valid_from"), data.get("valid_until")
    if not isinstance(valid_from, datetime) or valid_from.tzinfo is None:
        raise InvalidCampaign(_l("Give the start of the sale."), field="valid_from")
    if not isinstance(valid_until, datetime) or valid_until.tzinfo is None or valid_until <= valid_from:
        raise InvalidCampaign(_l("The sale must end after it starts."), field="valid_until")
    refuse_ended_sale(valid_until, now)
    clean["valid_from"], clean["valid_until"] = valid_from, valid_until
    store_ids = data.get("store_ids") or []
    if not store_ids:
        raise InvalidCampaign(_l("Choose at least one store."), field="store_ids")
    own = {store.id for store in merchant_stores(merchant)}
    if any(type(sid) is not int or sid not in own for sid in store_ids):
        raise InvalidCampaign(_l("That is not one of your stores."), field="store_ids")
    clean["store_ids"] = sorted(set(store_ids))
    clean["image_name"] = data.get("image_name") or ""
    return clean
