"""Campaign rules: the editor's checks, the lifecycle, revisions under review, stock raises and kiosk features.

Plain functions with keyword-only arguments and the acting user passed in; they flush and never commit, and refuse
with the typed errors of `campaigns.errors`. What they read without changing (loaders, snapshots, the review
queue) is in `campaigns.queries`.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
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
    ReasonRequired,
    RevisionNotPending,
)
from metropoints.campaigns.images import prune_images
from metropoints.campaigns.mail import mail_decision
from metropoints.campaigns.models import (
    CAMPAIGN_TRANSITIONS,
    EDITABLE,
    REVISED,
    BenefitType,
    Campaign,
    CampaignFeature,
    CampaignRevision,
    CampaignStatus,
    CampaignStore,
    RevisionStatus,
)
from metropoints.campaigns.queries import (
    audit_subject,
    get_campaign,
    jsonable,
    merchant_stores,
    owned_campaign,
    owner_merchant,
    pending_revision,
    snapshot,
)
from metropoints.core.db import db
from metropoints.core.errors import InvalidInput
from metropoints.core.models import Station, User
from metropoints.core.operations import record_audit
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Category, Merchant, MerchantStatus

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


def refuse_ended_sale(valid_until: datetime, now: datetime | None = None) -> None:
    """A sale window entirely in the past sells nothing: InvalidCampaign on `valid_until` (save, submit, approve)."""
    if valid_until <= (now or utcnow()):
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


def create_campaign(*, owner: User, data: dict[str, Any], now: datetime | None = None) -> Campaign:
    """A new draft campaign of the owner's merchant; nothing is sold before review."""
    merchant = owner_merchant(owner)
    fields = validate_fields(merchant=merchant, data=data, now=now)
    campaign = Campaign(merchant_id=merchant.id, status=CampaignStatus.draft, stock_left=fields["stock_total"],
                        **{k: v for k, v in fields.items() if k != "store_ids"})
    db.session.add(campaign)
    db.session.flush()
    _apply(campaign, {"store_ids": fields["store_ids"]})
    return campaign


def _keep_unchanged_times(fields: dict[str, Any], campaign: Campaign) -> dict[str, Any]:
    """Each sale time the editor showed unchanged put back to the campaign's exact time: the editor works to the
    minute, a campaign made otherwise (demo data, a script) may carry seconds, and that is no change to review."""
    kept = dict(fields)
    for name in ("valid_from", "valid_until"):
        stored = getattr(campaign, name)
        if kept[name] == stored.replace(second=0, microsecond=0):
            kept[name] = stored
    return kept


def update_campaign(*, owner: User, campaign: Campaign, data: dict[str, Any],
                    now: datetime | None = None) -> CampaignRevision | None:
    """Edit a campaign. Drafts and rejected campaigns change in place; an approved (or paused) one gets a pending
    revision of what riders see, replacing any earlier pending one, while the approved version stays on sale.
    Returns that revision (None when nothing went to review). An untouched sale time keeps its seconds."""
    merchant = owner_merchant(owner)
    if campaign.merchant_id != merchant.id:
        raise CampaignNotFound()
    if campaign.status in EDITABLE:
        fields = _keep_unchanged_times(validate_fields(merchant=merchant, data=data, now=now), campaign)
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
    checked = _keep_unchanged_times(validate_fields(merchant=merchant, data=data, with_stock=False, now=now), campaign)
    proposed = {k: jsonable(v) for k, v in checked.items()}
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


def _move(campaign: Campaign, to: CampaignStatus, *, allowed_from: set[CampaignStatus] | None = None,
          sale_open_at: datetime | None = None) -> None:
    """Change status along the transition table (only from `allowed_from`, and before `sale_open_at`, if given)."""
    if to not in CAMPAIGN_TRANSITIONS[campaign.status] or (allowed_from and campaign.status not in allowed_from):
        raise IllegalTransition(status=campaign.status.value, wanted=to.value)
    if sale_open_at is not None:
        refuse_ended_sale(campaign.valid_until, sale_open_at)
    campaign.status = to


def _reason(reason: str | None) -> str:
    """A non-empty reason, or ReasonRequired."""
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired(field="reason")
    return reason


def submit_campaign(*, owner: User, campaign: Campaign, now: datetime | None = None) -> None:
    """Send a draft (or a corrected rejected campaign) whose sale is not over for review; locked until decided."""
    now = now or utcnow()
    merchant = owner_merchant(owner)
    if campaign.merchant_id != merchant.id:
        raise CampaignNotFound()
    if merchant.status != MerchantStatus.approved:
        raise MerchantNotApproved()
    _move(campaign, CampaignStatus.submitted, sale_open_at=now)
    campaign.submitted_at = now
    db.session.flush()


def approve_campaign(*, operator: User, campaign: Campaign, reason: str = "", now: datetime | None = None) -> None:
    """Approve a submitted campaign whose sale is not over (it may have ended under review): it goes on sale."""
    now = now or utcnow()
    _move(campaign, CampaignStatus.approved, allowed_from={CampaignStatus.submitted}, sale_open_at=now)
    campaign.decided_at, campaign.decision_reason = now, (reason or "").strip()
    record_audit(actor=operator, action="campaign.approve", subject=audit_subject(campaign),
                 reason=campaign.decision_reason)
    mail_decision(campaign_id=campaign.id, kind="campaign.approved", reason=campaign.decision_reason)  # flushes


def reject_campaign(*, operator: User, campaign: Campaign, reason: str) -> None:
    """Reject a submitted campaign with a reason; the owner may edit and resubmit it."""
    reason = _reason(reason)
    _move(campaign, CampaignStatus.rejected)
    campaign.decided_at, campaign.decision_reason = utcnow(), reason
    record_audit(actor=operator, action="campaign.reject", subject=audit_subject(campaign), reason=reason)
    mail_decision(campaign_id=campaign.id, kind="campaign.rejected", reason=reason)  # flushes


def _owner_move(owner: User, campaign: Campaign, to: CampaignStatus, action: str,
                allowed_from: set[CampaignStatus]) -> None:
    """An owner's own status change of an approved campaign, audited."""
    if owned_campaign(owner=owner, campaign_id=campaign.id) is not campaign:
        raise CampaignNotFound()
    _move(campaign, to, allowed_from=allowed_from)
    record_audit(actor=owner, action=action, subject=audit_subject(campaign))
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
    record_audit(actor=owner, action="campaign.stock.raise", subject=audit_subject(campaign), reason=f"+{amount}")
    db.session.flush()


def approve_revision(*, operator: User, revision: CampaignRevision, reason: str = "",
                     now: datetime | None = None) -> None:
    """Apply a pending revision (its sale not over) to its campaign: riders see the new version from now on."""
    if revision.status != RevisionStatus.pending:
        raise RevisionNotPending()
    campaign = get_campaign(revision.campaign_id)
    if campaign.status not in REVISED:
        raise IllegalTransition()
    proposed = json.loads(revision.proposed_json)
    refuse_ended_sale(datetime.fromisoformat(proposed["valid_until"]), now)
    _apply(campaign, proposed)
    revision.status, revision.decided_by, revision.decided_at = RevisionStatus.approved, operator.id, utcnow()
    revision.reason = (reason or "").strip()
    record_audit(actor=operator, action="campaign.revision.approve",
                 subject=f"{audit_subject(campaign)} revision:{revision.id}", reason=revision.reason)
    mail_decision(campaign_id=campaign.id, kind="campaign.revision_approved", reason=revision.reason)  # flushes


def reject_revision(*, operator: User, revision: CampaignRevision, reason: str) -> None:
    """Refuse a pending revision; the approved version stays as it is."""
    reason = _reason(reason)
    if revision.status != RevisionStatus.pending:
        raise RevisionNotPending()
    revision.status, revision.decided_by, revision.decided_at = RevisionStatus.rejected, operator.id, utcnow()
    revision.reason = reason
    record_audit(actor=operator, action="campaign.revision.reject",
                 subject=f"campaign:{revision.campaign_id} revision:{revision.id}", reason=reason)
    mail_decision(campaign_id=revision.campaign_id, kind="campaign.revision_rejected", reason=reason)  # flushes


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
        record_audit(actor=operator, action="campaign.feature", subject=audit_subject(campaign),
                     reason="stations " + ", ".join(added))
    db.session.flush()
    return added


def unfeature_campaign(*, operator: User, campaign: Campaign, station_id: str) -> None:
    """Stop featuring a campaign at one station."""
    removed = db.session.execute(delete(CampaignFeature).where(CampaignFeature.campaign_id == campaign.id,
                                                               CampaignFeature.station_id == station_id)).rowcount
    if removed:
        record_audit(actor=operator, action="campaign.unfeature", subject=audit_subject(campaign),
                     reason=f"station {station_id}")
    db.session.flush()


# A form refused after its image was stored, or an image replaced, leaves a file nothing names; kept a day, since a
# merchant may still be filling in the form its upload came with.
ORPHAN_IMAGE_SECONDS = 24 * 3600


def prune_campaign_images(*, now: float | None = None) -> list[str]:
    """Delete uploaded images no campaign and no revision (proposed or previous) names; the names deleted."""
    keep = set(db.session.scalars(select(Campaign.image_name).where(Campaign.image_name != "")))
    for proposed, previous in db.session.execute(select(CampaignRevision.proposed_json,
                                                        CampaignRevision.previous_json)):
        for text_ in (proposed, previous):
            name = json.loads(text_).get("image_name") if text_ else None
            if name:
                keep.add(name)
    return prune_images(keep, older_than_seconds=ORPHAN_IMAGE_SECONDS, now=now)
