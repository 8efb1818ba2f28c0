"""Merchants, stores and staff memberships."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from metropoints.core.db import UTCDateTime, db
from metropoints.core.models import enum_column
from metropoints.core.timeutil import utcnow


class Category(enum.StrEnum):
    """What a merchant sells, and what a campaign offers (the catalogue's filter)."""

    dining = "dining"
    shopping = "shopping"
    entertainment = "entertainment"
    leisure = "leisure"


class MerchantStatus(enum.StrEnum):
    """Where a merchant stands with the metro business team."""

    applied = "applied"
    approved = "approved"
    rejected = "rejected"
    suspended = "suspended"  # its campaigns are off sale at once


# The decisions an operator may take from each status.
MERCHANT_TRANSITIONS: dict[MerchantStatus, set[MerchantStatus]] = {
    MerchantStatus.applied: {MerchantStatus.approved, MerchantStatus.rejected},
    MerchantStatus.approved: {MerchantStatus.suspended},
    MerchantStatus.suspended: {MerchantStatus.approved},
    MerchantStatus.rejected: set(),
}


class Merchant(db.Model):
    """A business that funds benefits; it applies, the metro team approves, and its owner then logs in."""

    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    category: Mapped[Category] = mapped_column(enum_column(Category, "category"))
    contact_name: Mapped[str] = mapped_column(String(64))
    contact_phone: Mapped[str] = mapped_column(String(20))
    licence_no: Mapped[str] = mapped_column(String(32), unique=True)  # the business licence (统一社会信用代码)
    status: Mapped[MerchantStatus] = mapped_column(enum_column(MerchantStatus, "merchant_status"))
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by the owner: the merchant's cashiers sign in with a second factor too (they enrol at their next sign-in).
    cashiers_need_second_factor: Mapped[bool] = mapped_column(default=False, server_default=false())


class Store(db.Model):
    """A place where a merchant's coupons are honoured, near a metro station."""

    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(255))
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"))
    opening_hours: Mapped[str] = mapped_column(String(120), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StaffMember(db.Model):
    """A portal user's place at a merchant: the owner (no store) or a cashier bound to one store."""

    __tablename__ = "staff_members"
    __table_args__ = (CheckConstraint("store_id IS NOT NULL OR is_owner", name="cashier_has_store"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    is_owner: Mapped[bool] = mapped_column(default=False)
    # A cashier invited by the owner sets a password through a link; only its hash is kept.
    invite_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invited_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
