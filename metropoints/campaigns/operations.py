"""Campaign rules: the editor's checks, the lifecycle, revisions under review, stock raises and kiosk features.

Plain functions with keyword-only arguments and the acting user passed in; they flush and never commit, and refuse
with the typed errors of `campaigns.errors`.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select, update

from metropoints.campaigns.errors import (
    CampaignLocked,
    CampaignNotFound,
    IllegalTransition,
    InvalidCampaign,
    MerchantNotApproved,
    NotMerchantOwner,
    ReasonRequired,
    RevisionNotPending,
)
from metropoints.campaigns.models import (
    CAMPAIGN_TRANSITIONS,
    BenefitType,
    Campaign,
    CampaignFeature,
    CampaignRevision,
    CampaignStatus,
    CampaignStore,
    RevisionStatus,
)
from metropoints.core.db import db
from metropoints.core.errors import InvalidInput
from metropoints.core.models import Role, Station, User
from metropoints.core.operations import record_audit
from metropoints.core.timeutil import SERVICE_OFFSET, utcnow
from metropoints.marketplace.models import Category, Merchant, MerchantStatus, Store
from metropoints.marketplace.queries import portal_membership

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
# What riders see: changing any of these on an approved campaign goes through a reviewed revision.
RIDER_FIELDS = ("title", "description", "category", "benefit_type", "face_value_fen", "discount_percent",
                "point_price", "per_rider_limit", "valid_from", "valid_until", "coupon_valid_days", "terms",
                "image_name", "store_ids")
FIELD_LABELS = {"title": _l("Title"), "description": _l("Description"), "category": _l("Category"),
                "benefit_type": _l("Benefit"), "face_value_fen": _l("Face value (fen)"),
                "discount_percent": _l("Discount (%)"), "point_price": _l("Point price"),
                "per_rider_limit": _l("Per-rider limit"), "valid_from": _l("On sale from"),
                "valid_until": _l("On sale until"), "coupon_valid_days": _l("Coupon valid (days)"),
                "terms": _l("Terms"), "image_name": _l("Image"), "store_ids": _l("Stores")}
EDITABLE = {CampaignStatus.draft, CampaignStatus.rejected}
REVISED = {CampaignStatus.approved, CampaignStatus.paused}


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


def owner_merchant(user: User) -> Merchant:
    """The approved merchant this user owns; NotMerchantOwner for anyone else (cashiers, operators), and the
    marketplace's 403 for the owner of a merchant that is not approved (a suspended one is locked out at once)."""
    if user.role != Role.merchant_owner:
        raise NotMerchantOwner()
    membership = portal_membership(user, owner=True)
    return db.session.get(Merchant, membership.merchant_id)


def owned_campaign(*, owner: User, campaign_id: int) -> Campaign:
    """A campaign of the owner's merchant; another merchant's is as unknown as a missing one."""
    merchant = owner_merchant(owner)
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.merchant_id != merchant.id:
        raise CampaignNotFound()
    return campaign


def get_campaign(campaign_id: int) -> Campaign:
    """Any campaign, for the back office."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignNotFound()
    return campaign


def merchant_stores(merchant: Merchant) -> list[Store]:
    """The merchant's active stores: the only ones its campaigns may name."""
    return list(db.session.scalars(select(Store).where(Store.merchant_id == merchant.id, Store.active)
                                   .order_by(Store.name, Store.id)))


def _int(data: dict[str, Any], field: str, low: int, high: int, message: Any) -> int:
    """An integer field within [low, high], or an InvalidCampaign on that field."""
    value = data.get(field)
    if type(value) is not int or not low <= value <= high:
        raise InvalidCampaign(message, field=field)
    return value


def validate_fields(*, merchant: Merchant, data: dict[str, Any], with_stock: bool = True) -> dict[str, Any]:
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


def store_ids_of(campaign: Campaign) -> list[int]:
    """The ids of the stores a campaign is valid at."""
    return sorted(db.session.scalars(select(CampaignStore.store_id).where(CampaignStore.campaign_id == campaign.id)))


def snapshot(campaign: Campaign) -> dict[str, Any]:
    """The rider-facing fields as JSON-ready values (times in UTC ISO 8601), for revisions and diffs."""
    values: dict[str, Any] = {}
    for field in RIDER_FIELDS:
        value = store_ids_of(campaign) if field == "store_ids" else getattr(campaign, field)
        values[field] = _jsonable(value)
    return values


def _jsonable(value: Any) -> Any:
    """A field value as JSON can hold it."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()  # one spelling per instant, so equal times compare equal
    if isinstance(value, Category | BenefitType):
        return value.value
    return value


def _apply(campaign: Campaign, fields: dict[str, Any]) -> None:
    """Write checked fields onto a campaign, its stores included."""
    for field, value in fields.items():
        if field == "store_ids":
            continue
        if field in ("valid_from", "valid_until") and isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif field == "category":
            value = Category(value)
        elif field == "benefit_type":
            value = BenefitType(value)
        setattr(campaign, field, value)
    if "store_ids" in fields:
        db.session.execute(delete(CampaignStore).where(CampaignStore.campaign_id == campaign.id))
        db.session.add_all(CampaignStore(campaign_id=campaign.id, store_id=sid) for sid in fields["store_ids"])
    db.session.flush()


def pending_revision(campaign: Campaign) -> CampaignRevision | None:
    """The campaign's revision awaiting review, if any (there is at most one)."""
    return db.session.scalar(select(CampaignRevision).where(CampaignRevision.campaign_id == campaign.id,
                                                            CampaignRevision.status == RevisionStatus.pending))


def editor_values(campaign: Campaign) -> dict[str, Any]:
    """What the editor starts from: the pending proposal of an approved campaign, else the campaign itself."""
    revision = pending_revision(campaign)
    values = json.loads(revision.proposed_json) if revision else snapshot(campaign)
    for field in ("valid_from", "valid_until"):
        values[field] = datetime.fromisoformat(values[field])
    values["stock_total"] = campaign.stock_total
    return values


def create_campaign(*, owner: User, data: dict[str, Any]) -> Campaign:
    """A new draft campaign of the owner's merchant; nothing is sold before review."""
    merchant = owner_merchant(owner)
    fields = validate_fields(merchant=merchant, data=data)
    campaign = Campaign(merchant_id=merchant.id, status=CampaignStatus.draft, stock_left=fields["stock_total"],
                        **{k: v for k, v in fields.items() if k != "store_ids"})
    db.session.add(campaign)
    db.session.flush()
    _apply(campaign, {"store_ids": fields["store_ids"]})
    return campaign


def update_campaign(*, owner: User, campaign: Campaign, data: dict[str, Any]) -> CampaignRevision | None:
    """Edit a campaign. Drafts and rejected campaigns change in place; an approved (or paused) one gets a pending
    revision of what riders see, replacing any earlier pending one, while the approved version stays on sale.
    Returns that revision (None when nothing went to review)."""
    merchant = owner_merchant(owner)
    if campaign.merchant_id != merchant.id:
        raise CampaignNotFound()
    if campaign.status in EDITABLE:
        fields = validate_fields(merchant=merchant, data=data)
        _apply(campaign, fields)
        campaign.stock_left = campaign.stock_total
        db.session.flush()
        return None
    if campaign.status not in REVISED:
        raise CampaignLocked()
    current = snapshot(campaign)
    revision = pending_revision(campaign)
    if not data.get("image_name"):
        data = {**data, "image_name": json.loads(revision.proposed_json)["image_name"] if revision
                else campaign.image_name}
    proposed = {k: _jsonable(v) for k, v in validate_fields(merchant=merchant, data=data, with_stock=False).items()}
    if proposed == current:
        if revision is not None:  # edited back to the live version: nothing left to review
            db.session.delete(revision)
            db.session.flush()
        return None
    if revision is None:
        revision = CampaignRevision(campaign_id=campaign.id, status=RevisionStatus.pending, created_by=owner.id)
        db.session.add(revision)
    revision.proposed_json, revision.previous_json = json.dumps(proposed), json.dumps(current)
    revision.created_by, revision.created_at = owner.id, utcnow()
    db.session.flush()
    return revision


def _move(campaign: Campaign, to: CampaignStatus, *, allowed_from: set[CampaignStatus] | None = None) -> None:
    """Change status along the transition table (and only from `allowed_from` when given)."""
    if to not in CAMPAIGN_TRANSITIONS[campaign.status] or (allowed_from and campaign.status not in allowed_from):
        raise IllegalTransition(status=campaign.status.value, wanted=to.value)
    campaign.status = to


def _subject(campaign: Campaign) -> str:
    """The audit log's name for a campaign."""
    return f"campaign:{campaign.id}"


def _reason(reason: str | None) -> str:
    """A non-empty reason, or ReasonRequired."""
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired(field="reason")
    return reason


def submit_campaign(*, owner: User, campaign: Campaign) -> None:
    """Send a draft (or a corrected rejected campaign) for review; it is locked until decided."""
    merchant = owner_merchant(owner)
    if campaign.merchant_id != merchant.id:
        raise CampaignNotFound()
    if merchant.status != MerchantStatus.approved:
        raise MerchantNotApproved()
    _move(campaign, CampaignStatus.submitted)
    campaign.submitted_at = utcnow()
    db.session.flush()


def approve_campaign(*, operator: User, campaign: Campaign, reason: str = "") -> None:
    """Approve a submitted campaign: it goes on sale during its window."""
    _move(campaign, CampaignStatus.approved, allowed_from={CampaignStatus.submitted})
    campaign.decided_at, campaign.decision_reason = utcnow(), (reason or "").strip()
    record_audit(actor=operator, action="campaign.approve", subject=_subject(campaign), reason=campaign.decision_reason)
    db.session.flush()


def reject_campaign(*, operator: User, campaign: Campaign, reason: str) -> None:
    """Reject a submitted campaign with a reason; the owner may edit and resubmit it."""
    reason = _reason(reason)
    _move(campaign, CampaignStatus.rejected)
    campaign.decided_at, campaign.decision_reason = utcnow(), reason
    record_audit(actor=operator, action="campaign.reject", subject=_subject(campaign), reason=reason)
    db.session.flush()


def _owner_move(owner: User, campaign: Campaign, to: CampaignStatus, action: str,
                allowed_from: set[CampaignStatus]) -> None:
    """An owner's own status change of an approved campaign, audited."""
    if owned_campaign(owner=owner, campaign_id=campaign.id) is not campaign:
        raise CampaignNotFound()
    _move(campaign, to, allowed_from=allowed_from)
    record_audit(actor=owner, action=action, subject=_subject(campaign))
    db.session.flush()


def pause_campaign(*, owner: User, campaign: Campaign) -> None:
    """Take an approved campaign off sale for a while."""
    _owner_move(owner, campaign, CampaignStatus.paused, "campaign.pause", {CampaignStatus.approved})


def resume_campaign(*, owner: User, campaign: Campaign) -> None:
    """Put a paused campaign back on sale (within its window)."""
    _owner_move(owner, campaign, CampaignStatus.approved, "campaign.resume", {CampaignStatus.paused})


def end_campaign(*, owner: User, campaign: Campaign) -> None:
    """End an approved or paused campaign for good; a revision still pending is closed unapplied."""
    _owner_move(owner, campaign, CampaignStatus.ended, "campaign.end", REVISED)
    revision = pending_revision(campaign)
    if revision is not None:
        revision.status, revision.decided_at, revision.reason = RevisionStatus.rejected, utcnow(), "campaign ended"
        db.session.flush()


def raise_stock(*, owner: User, campaign: Campaign, amount: int) -> None:
    """Add stock to an approved or paused campaign at once, without review. One UPDATE adds to both counters, so
    redemptions decrementing stock_left at the same time are never overwritten."""
    if owned_campaign(owner=owner, campaign_id=campaign.id) is not campaign:
        raise CampaignNotFound()
    if campaign.status not in REVISED:
        raise IllegalTransition(_l("Stock can be added here only to an approved or paused campaign; edit a draft."))
    if type(amount) is not int or not 1 <= amount <= MAX_STOCK:
        raise InvalidInput(_l("Add 1 to 1,000,000 coupons."), field="amount")
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(stock_total=Campaign.stock_total + amount, stock_left=Campaign.stock_left + amount)
                       .execution_options(synchronize_session=False))
    db.session.expire(campaign, ["stock_total", "stock_left"])
    record_audit(actor=owner, action="campaign.stock.raise", subject=_subject(campaign), reason=f"+{amount}")
    db.session.flush()


def approve_revision(*, operator: User, revision: CampaignRevision, reason: str = "") -> None:
    """Apply a pending revision to its campaign: riders see the new version from now on."""
    if revision.status != RevisionStatus.pending:
        raise RevisionNotPending()
    campaign = get_campaign(revision.campaign_id)
    if campaign.status not in REVISED:
        raise IllegalTransition()
    _apply(campaign, json.loads(revision.proposed_json))
    revision.status, revision.decided_by, revision.decided_at = RevisionStatus.approved, operator.id, utcnow()
    revision.reason = (reason or "").strip()
    record_audit(actor=operator, action="campaign.revision.approve",
                 subject=f"{_subject(campaign)} revision:{revision.id}", reason=revision.reason)
    db.session.flush()


def reject_revision(*, operator: User, revision: CampaignRevision, reason: str) -> None:
    """Refuse a pending revision; the approved version stays as it is."""
    reason = _reason(reason)
    if revision.status != RevisionStatus.pending:
        raise RevisionNotPending()
    revision.status, revision.decided_by, revision.decided_at = RevisionStatus.rejected, operator.id, utcnow()
    revision.reason = reason
    record_audit(actor=operator, action="campaign.revision.reject",
                 subject=f"campaign:{revision.campaign_id} revision:{revision.id}", reason=reason)
    db.session.flush()


def revision_diff(revision: CampaignRevision) -> list[tuple[Any, Any, Any]]:
    """(label, before, after) for each rider-facing field the revision changes; stores by name."""
    before, after = json.loads(revision.previous_json), json.loads(revision.proposed_json)
    names = dict(db.session.execute(select(Store.id, Store.name).where(
        Store.id.in_(set(before.get("store_ids", [])) | set(after.get("store_ids", []))))).all())
    rows = []
    for field in RIDER_FIELDS:
        old, new = before.get(field), after.get(field)
        if old == new:
            continue
        if field == "store_ids":
            old, new = (", ".join(names.get(sid, str(sid)) for sid in ids) for ids in (old or [], new or []))
        elif field in ("valid_from", "valid_until"):
            old, new = (datetime.fromisoformat(v).astimezone(SERVICE_OFFSET).strftime("%Y-%m-%d %H:%M")
                        for v in (old, new))
        rows.append((FIELD_LABELS[field], "" if old is None else old, "" if new is None else new))
    return rows


def review_queue() -> tuple[list[Campaign], list[tuple[CampaignRevision, Campaign]]]:
    """What awaits the metro team: submitted campaigns and pending revisions, oldest first."""
    submitted = list(db.session.scalars(select(Campaign).where(Campaign.status == CampaignStatus.submitted)
                                        .order_by(Campaign.submitted_at, Campaign.id)))
    revisions = [tuple(row) for row in db.session.execute(
        select(CampaignRevision, Campaign).join(Campaign, Campaign.id == CampaignRevision.campaign_id)
        .where(CampaignRevision.status == RevisionStatus.pending)
        .order_by(CampaignRevision.created_at, CampaignRevision.id))]
    return submitted, revisions


def feature_campaign(*, operator: User, campaign: Campaign, station_ids: list[str]) -> list[str]:
    """Feature an approved campaign on the kiosks of these stations; returns the stations newly added."""
    if campaign.status not in REVISED:
        raise IllegalTransition(_l("Only an approved campaign can be featured."))
    wanted = sorted(set(station_ids))
    known = set(db.session.scalars(select(Station.station_id).where(Station.station_id.in_(wanted))))
    if not wanted or known != set(wanted):
        raise InvalidInput(_l("Choose stations of the network."), field="station_ids")
    present = set(db.session.scalars(select(CampaignFeature.station_id)
                                     .where(CampaignFeature.campaign_id == campaign.id)))
    added = [sid for sid in wanted if sid not in present]
    db.session.add_all(CampaignFeature(campaign_id=campaign.id, station_id=sid, created_by=operator.id)
                       for sid in added)
    if added:
        record_audit(actor=operator, action="campaign.feature", subject=_subject(campaign),
                     reason="stations " + ", ".join(added))
    db.session.flush()
    return added


def unfeature_campaign(*, operator: User, campaign: Campaign, station_id: str) -> None:
    """Stop featuring a campaign at one station."""
    removed = db.session.execute(delete(CampaignFeature).where(CampaignFeature.campaign_id == campaign.id,
                                                               CampaignFeature.station_id == station_id)).rowcount
    if removed:
        record_audit(actor=operator, action="campaign.unfeature", subject=_subject(campaign),
                     reason=f"station {station_id}")
    db.session.flush()


def features_of(campaign: Campaign) -> list[CampaignFeature]:
    """Where a campaign is featured."""
    return list(db.session.scalars(select(CampaignFeature).where(CampaignFeature.campaign_id == campaign.id)
                                   .order_by(CampaignFeature.station_id)))


# A form refused after its image was stored, or an image replaced, leaves a file nothing names; kept a day, since a
# merchant may still be filling in the form its upload came with.
ORPHAN_IMAGE_SECONDS = 24 * 3600


def prune_campaign_images(*, now: float | None = None) -> list[str]:
    """Delete uploaded images no campaign and no revision (proposed or previous) names; the names deleted."""
    from metropoints.campaigns.images import prune_images

    keep = set(db.session.scalars(select(Campaign.image_name).where(Campaign.image_name != "")))
    for proposed, previous in db.session.execute(select(CampaignRevision.proposed_json,
                                                        CampaignRevision.previous_json)):
        for text_ in (proposed, previous):
            name = json.loads(text_).get("image_name") if text_ else None
            if name:
                keep.add(name)
    return prune_images(keep, older_than_seconds=ORPHAN_IMAGE_SECONDS, now=now)
