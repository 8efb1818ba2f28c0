"""Campaign rules: the editor's saves, the lifecycle, duplication, withdrawal, revisions under review, stock raises
and kiosk features.

Plain functions with keyword-only arguments and the acting user passed in; they flush and never commit, and refuse
with the typed errors of `campaigns.errors`. What the fields may be is `campaigns.fields`; what the rules read without
changing (loaders, snapshots, the review queue) is in `campaigns.queries`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select, update

from metropoints.campaigns import soldout
from metropoints.campaigns.errors import (
    CampaignLocked,
    CampaignNotFound,
    IllegalTransition,
    MerchantNotApproved,
    NothingToWithdraw,
    ReasonRequired,
    RevisionNotPending,
    RevisionWithdrawn,
    SubmissionWithdrawn,
)
from metropoints.campaigns.fields import MAX_STOCK, refuse_ended_sale, validate_fields
from metropoints.campaigns.mail import mail_decision
from metropoints.campaigns.models import (
    CAMPAIGN_TRANSITIONS,
    EDITABLE,
    REVISED,
    RIDER_FIELDS,
    Campaign,
    CampaignFeature,
    CampaignRevision,
    CampaignStatus,
    CampaignStore,
    RevisionStatus,
)
from metropoints.campaigns.queries import (
    audit_subject,
    from_json,
    get_campaign,
    jsonable,
    merchant_stores,
    owned_campaign,
    owner_merchant,
    pending_revision,
    snapshot,
    store_ids_of,
)
from metropoints.core.db import db
from metropoints.core.errors import InvalidInput
from metropoints.core.models import Station, User
from metropoints.core.operations import record_audit
from metropoints.core.schemas import width
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import MerchantStatus


def _apply(campaign: Campaign, fields: dict[str, Any]) -> None:
    """Write checked fields onto a campaign, its stores included."""
    for field, value in fields.items():
        if field != "store_ids":
            setattr(campaign, field, from_json(field, value))
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


def _refuse_withdrawn(campaign: Campaign) -> None:
    """A decision on a campaign its owner took back from review is refused as such, not as a mere wrong status."""
    if campaign.withdrawn:
        raise SubmissionWithdrawn()


def approve_campaign(*, operator: User, campaign: Campaign, reason: str = "", now: datetime | None = None) -> None:
    """Approve a submitted campaign whose sale is not over (it may have ended under review): it goes on sale."""
    now = now or utcnow()
    _refuse_withdrawn(campaign)
    _move(campaign, CampaignStatus.approved, allowed_from={CampaignStatus.submitted}, sale_open_at=now)
    campaign.decided_at, campaign.decision_reason = now, (reason or "").strip()
    record_audit(actor=operator, action="campaign.approve", subject=audit_subject(campaign),
                 reason=campaign.decision_reason)
    mail_decision(campaign_id=campaign.id, kind="campaign.approved", reason=campaign.decision_reason)  # flushes


def reject_campaign(*, operator: User, campaign: Campaign, reason: str) -> None:
    """Reject a submitted campaign with a reason; the owner may edit and resubmit it."""
    _refuse_withdrawn(campaign)
    reason = _reason(reason)
    _move(campaign, CampaignStatus.rejected)
    campaign.decided_at, campaign.decision_reason = utcnow(), reason
    record_audit(actor=operator, action="campaign.reject", subject=audit_subject(campaign), reason=reason)
    mail_decision(campaign_id=campaign.id, kind="campaign.rejected", reason=reason)  # flushes


def _owner_move(owner: User, campaign: Campaign, to: CampaignStatus, action: str,
                allowed_from: set[CampaignStatus]) -> None:
    """An owner's own status change of their campaign (pause, resume, end, withdrawal from review), audited."""
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


def withdraw_submission(*, owner: User, campaign: Campaign) -> None:
    """Take a submitted campaign back from review: a draft again, editable, gone from the review queue; it keeps its
    submission time, so a reviewer still on its page is told it was withdrawn."""
    if owned_campaign(owner=owner, campaign_id=campaign.id) is not campaign:
        raise CampaignNotFound()
    if campaign.status != CampaignStatus.submitted:
        raise NothingToWithdraw()
    _owner_move(owner, campaign, CampaignStatus.draft, "campaign.withdraw", {CampaignStatus.submitted})


def withdraw_revision(*, owner: User, campaign: Campaign, now: datetime | None = None) -> None:
    """Take back the changes to an approved campaign still under review: the revision is closed unapplied as
    withdrawn by the owner, it leaves the review queue, and riders keep seeing the approved version."""
    if owned_campaign(owner=owner, campaign_id=campaign.id) is not campaign:
        raise CampaignNotFound()
    revision = pending_revision(campaign)
    if revision is None:
        raise NothingToWithdraw()
    revision.withdraw(owner_id=owner.id, at=now or utcnow())
    record_audit(actor=owner, action="campaign.revision.withdraw",
                 subject=f"{audit_subject(campaign)} revision:{revision.id}")
    db.session.flush()


def copy_title(title: str) -> str:
    """A copy's title: the original's, marked as a copy in the owner's language, shortened to fit the column."""
    marked = gettext("%(title)s (copy)", title=title)
    overflow = len(marked) - width(Campaign.title)
    if overflow > 0:
        marked = gettext("%(title)s (copy)", title=title[:len(title) - overflow - 1].rstrip() + "…")
    return marked


def duplicate_campaign(*, owner: User, campaign: Campaign) -> Campaign:
    """A new draft of the owner's merchant with a campaign's fields (the approved version, not a revision under
    review), stock, image and stores still active, from any status, its title marked as a copy. None of the
    original's history comes along: no decision, revision, feature or sale (all its stock is left). A sale window
    already over is copied as it is: a draft may hold it, and saving or submitting asks for new dates."""
    merchant = owner_merchant(owner)
    if campaign.merchant_id != merchant.id:
        raise CampaignNotFound()
    copied = {field: getattr(campaign, field) for field in RIDER_FIELDS if field not in ("title", "store_ids")}
    copy = Campaign(merchant_id=merchant.id, status=CampaignStatus.draft, title=copy_title(campaign.title),
                    stock_total=campaign.stock_total, stock_left=campaign.stock_total, **copied)
    db.session.add(copy)
    db.session.flush()
    named = set(store_ids_of(campaign))
    db.session.add_all(CampaignStore(campaign_id=copy.id, store_id=store.id)
                       for store in merchant_stores(merchant) if store.id in named)
    record_audit(actor=owner, action="campaign.duplicate", subject=audit_subject(copy),
                 reason=f"from {audit_subject(campaign)}")
    db.session.flush()
    return copy


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
    soldout.clear_on_commit(campaign.id)  # on sale again once this commits
    record_audit(actor=owner, action="campaign.stock.raise", subject=audit_subject(campaign), reason=f"+{amount}")
    db.session.flush()


def _refuse_decided(revision: CampaignRevision) -> None:
    """Only a pending revision is decided: one withdrawn by its owner, or decided already, is refused as such."""
    if revision.status != RevisionStatus.pending:
        raise RevisionWithdrawn() if revision.withdrawn else RevisionNotPending()


def approve_revision(*, operator: User, revision: CampaignRevision, reason: str = "",
                     now: datetime | None = None) -> None:
    """Apply a pending revision (its sale not over) to its campaign: riders see the new version from now on."""
    _refuse_decided(revision)
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
    _refuse_decided(revision)
    reason = _reason(reason)
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
