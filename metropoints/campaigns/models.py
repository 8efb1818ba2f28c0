"""Campaigns, the stores they are valid at, revisions under review, and kiosk features. (The coupons riders buy
are redemption's: metropoints.redemption.models.)"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from metropoints.core.db import UTCDateTime, db
from metropoints.core.models import enum_column
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Category


class BenefitType(enum.StrEnum):
    """What the rider gets."""

    voucher = "voucher"  # cash off, face value in fen
    discount = "discount"  # a percentage off
    free_item = "free_item"  # an item for free


class CampaignStatus(enum.StrEnum):
    """Where a campaign stands. "Live" and "sold out" are not stored: they follow from the sale window, stock
    and the merchant's standing (see campaigns.catalogue)."""

    draft = "draft"
    submitted = "submitted"  # locked for editing until reviewed
    approved = "approved"
    rejected = "rejected"
    paused = "paused"
    ended = "ended"


CAMPAIGN_TRANSITIONS: dict[CampaignStatus, set[CampaignStatus]] = {
    CampaignStatus.draft: {CampaignStatus.submitted},
    # back to draft: its owner withdrew it before a decision
    CampaignStatus.submitted: {CampaignStatus.approved, CampaignStatus.rejected, CampaignStatus.draft},
    CampaignStatus.rejected: {CampaignStatus.submitted},
    CampaignStatus.approved: {CampaignStatus.paused, CampaignStatus.ended},
    CampaignStatus.paused: {CampaignStatus.approved, CampaignStatus.ended},
    CampaignStatus.ended: set(),
}
EDITABLE = {CampaignStatus.draft, CampaignStatus.rejected}  # changed in place by the editor
REVISED = {CampaignStatus.approved, CampaignStatus.paused}  # changed through a reviewed revision
# What riders see: changing any of these on an approved campaign goes through a reviewed revision.
RIDER_FIELDS = ("title", "description", "category", "benefit_type", "face_value_fen", "discount_percent",
                "point_price", "per_rider_limit", "valid_from", "valid_until", "coupon_valid_days", "terms",
                "image_name", "store_ids")


class Campaign(db.Model):
    """A benefit a merchant funds, sold for points: price, stock, per-rider limit, sale window, coupon validity."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("point_price > 0", name="price_positive"),
        CheckConstraint("stock_total > 0 AND stock_left >= 0 AND stock_left <= stock_total", name="stock_in_range"),
        CheckConstraint("per_rider_limit > 0", name="limit_positive"),
        CheckConstraint("valid_until > valid_from", name="window_forward"),
        CheckConstraint("coupon_valid_days > 0", name="coupon_days_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    status: Mapped[CampaignStatus] = mapped_column(enum_column(CampaignStatus, "campaign_status"))
    title: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[Category] = mapped_column(enum_column(Category, "campaign_category"))
    benefit_type: Mapped[BenefitType] = mapped_column(enum_column(BenefitType, "benefit_type"))
    face_value_fen: Mapped[int | None] = mapped_column(Integer)  # vouchers
    discount_percent: Mapped[int | None] = mapped_column(Integer)  # discounts
    point_price: Mapped[int] = mapped_column(Integer)
    stock_total: Mapped[int] = mapped_column(Integer)
    stock_left: Mapped[int] = mapped_column(Integer)
    per_rider_limit: Mapped[int] = mapped_column(Integer, default=1)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)  # the sale window
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    coupon_valid_days: Mapped[int] = mapped_column(Integer, default=30)
    terms: Mapped[str] = mapped_column(Text, default="")
    image_name: Mapped[str] = mapped_column(String(80), default="")  # a file in the instance's upload folder
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def withdrawn(self) -> bool:
        """A draft that was submitted and taken back by its owner before a decision (a resubmission or a decision
        would have moved it on)."""
        return self.status == CampaignStatus.draft and self.submitted_at is not None


class CampaignStore(db.Model):
    """A store where a campaign's coupons can be used."""

    __tablename__ = "campaign_stores"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)


class RevisionStatus(enum.StrEnum):
    """A proposed change to what riders see of an approved campaign."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"


# The reason a revision its owner took back before a decision is closed with (as rejected, decided by the owner).
REVISION_WITHDRAWN = "withdrawn by the merchant"


class CampaignRevision(db.Model):
    """Changes to an approved campaign's rider-facing fields, reviewed while the approved version stays live."""

    __tablename__ = "campaign_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    status: Mapped[RevisionStatus] = mapped_column(enum_column(RevisionStatus, "revision_status"))
    proposed_json: Mapped[str] = mapped_column(Text)  # the fields as they would become
    previous_json: Mapped[str] = mapped_column(Text)  # the same fields as they were, for the diff
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def withdrawn(self) -> bool:
        """Taken back by the merchant before the metro team decided."""
        return self.status == RevisionStatus.rejected and self.reason == REVISION_WITHDRAWN

    def withdraw(self, *, owner_id: int, at: datetime) -> None:
        """Close a pending revision unapplied, as its owner's withdrawal."""
        self.status, self.reason = RevisionStatus.rejected, REVISION_WITHDRAWN
        self.decided_by, self.decided_at = owner_id, at


class CampaignFeature(db.Model):
    """A campaign featured on the kiosks of one station."""

    __tablename__ = "campaign_features"
    __table_args__ = (UniqueConstraint("campaign_id", "station_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"), index=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
