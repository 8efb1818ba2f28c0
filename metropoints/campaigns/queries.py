"""Read side of campaigns: loaders that 404/403 in one place, what the editor and the review pages show, and the
owner's and the back office's lists. (The live catalogue, which riders and kiosks read, is campaigns.catalogue.)"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from metropoints.campaigns.errors import CampaignNotFound, NotMerchantOwner, RevisionNotFound
from metropoints.campaigns.models import (
    RIDER_FIELDS,
    BenefitType,
    Campaign,
    CampaignFeature,
    CampaignRevision,
    CampaignStatus,
    CampaignStore,
    RevisionStatus,
)
from metropoints.core.db import db
from metropoints.core.models import AuditEntry, Role, Station, User
from metropoints.core.templating import local_datetime
from metropoints.marketplace.models import Category, Merchant, Store
from metropoints.marketplace.queries import portal_membership

FIELD_LABELS = {"title": _l("Title"), "description": _l("Description"), "category": _l("Category"),
                "benefit_type": _l("Benefit"), "face_value_fen": _l("Face value (fen)"),
                "discount_percent": _l("Discount (%)"), "point_price": _l("Point price"),
                "per_rider_limit": _l("Per-rider limit"), "valid_from": _l("On sale from"),
                "valid_until": _l("On sale until"), "coupon_valid_days": _l("Coupon valid (days)"),
                "terms": _l("Terms"), "image_name": _l("Image"), "store_ids": _l("Stores")}


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


def viewable_campaign(*, user: User, campaign_id: int) -> Campaign:
    """A campaign this portal user may look at: any for the back office, an owner's own only."""
    if user.role == Role.operator:
        return get_campaign(campaign_id)
    return owned_campaign(owner=user, campaign_id=campaign_id)


def get_revision(revision_id: int) -> CampaignRevision:
    """Any revision, for the back office; RevisionNotFound when there is none."""
    revision = db.session.get(CampaignRevision, revision_id)
    if revision is None:
        raise RevisionNotFound()
    return revision


def merchant_of(campaign: Campaign) -> Merchant:
    """The merchant whose campaign it is."""
    return db.session.get(Merchant, campaign.merchant_id)


def merchant_stores(merchant: Merchant) -> list[Store]:
    """The merchant's active stores: the only ones its campaigns may name."""
    return list(db.session.scalars(select(Store).where(Store.merchant_id == merchant.id, Store.active)
                                   .order_by(Store.name, Store.id)))


def active_stores(store_ids: Iterable[int]) -> list[Store]:
    """The active stores among these ids, by id, as the catalogue lists a campaign's stores."""
    return list(db.session.scalars(select(Store).where(Store.id.in_(set(store_ids)), Store.active)
                                   .order_by(Store.id)))


def owner_campaigns(merchant: Merchant) -> list[Campaign]:
    """The merchant's campaigns, newest first."""
    return list(db.session.scalars(select(Campaign).where(Campaign.merchant_id == merchant.id)
                                   .order_by(Campaign.id.desc())))


def store_ids_of(campaign: Campaign) -> list[int]:
    """The ids of the stores a campaign is valid at."""
    return sorted(db.session.scalars(select(CampaignStore.store_id).where(CampaignStore.campaign_id == campaign.id)))


def jsonable(value: Any) -> Any:
    """A campaign field's value as JSON can hold it."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()  # one spelling per instant, so equal times compare equal
    if isinstance(value, Category | BenefitType):
        return value.value
    return value


def from_json(field: str, value: Any) -> Any:
    """A campaign field's value from its JSON form (the inverse of `jsonable`): times and choices parsed back."""
    if field in ("valid_from", "valid_until") and isinstance(value, str):
        return datetime.fromisoformat(value)
    if field == "category":
        return Category(value)
    if field == "benefit_type":
        return BenefitType(value)
    return value


def snapshot(campaign: Campaign) -> dict[str, Any]:
    """The rider-facing fields as JSON-ready values (times in UTC ISO 8601), for revisions and diffs."""
    values: dict[str, Any] = {}
    for field in RIDER_FIELDS:
        value = store_ids_of(campaign) if field == "store_ids" else getattr(campaign, field)
        values[field] = jsonable(value)
    return values


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
            old, new = (local_datetime(datetime.fromisoformat(v)) for v in (old, new))
            if old == new:  # seconds apart (a revision saved before the editor kept them): nothing to review
                continue
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


def approved_campaigns(limit: int = 100) -> list[tuple[Campaign, Merchant]]:
    """The newest approved campaigns with their merchants (the back office features them on kiosks)."""
    return [tuple(row) for row in db.session.execute(
        select(Campaign, Merchant).join(Merchant, Merchant.id == Campaign.merchant_id)
        .where(Campaign.status == CampaignStatus.approved).order_by(Campaign.id.desc()).limit(limit))]


def merchants_by_id(ids: Iterable[int]) -> dict[int, Merchant]:
    """The merchants with these ids, by id, in one query."""
    return {m.id: m for m in db.session.scalars(select(Merchant).where(Merchant.id.in_(set(ids))))}


def audit_subject(campaign: Campaign) -> str:
    """The audit log's name for a campaign."""
    return f"campaign:{campaign.id}"


def campaign_history(campaign: Campaign) -> list[AuditEntry]:
    """The audit entries about a campaign (its revisions' included), newest first."""
    subject = audit_subject(campaign)
    return list(db.session.scalars(select(AuditEntry).where(
        (AuditEntry.subject == subject) | AuditEntry.subject.startswith(subject + " "))
        .order_by(AuditEntry.id.desc())))


def features_of(campaign: Campaign) -> list[CampaignFeature]:
    """Where a campaign is featured."""
    return list(db.session.scalars(select(CampaignFeature).where(CampaignFeature.campaign_id == campaign.id)
                                   .order_by(CampaignFeature.station_id)))


def stations() -> list[Station]:
    """Every station of the network, by id (the featuring form's choices)."""
    return list(db.session.scalars(select(Station).order_by(Station.station_id)))
