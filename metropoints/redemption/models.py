"""Coupons: what riders bought with points, and where each one stands; the unknown codes a store's counter sent."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from metropoints.core.db import UTCDateTime, db
from metropoints.core.models import enum_column
from metropoints.core.timeutil import utcnow
from metropoints.redemption.codes import new_counter_code


class CouponStatus(enum.StrEnum):
    """Where a coupon stands; each move is one guarded UPDATE, so a coupon is used or cancelled at most once."""

    issued = "issued"
    used = "used"
    expired = "expired"
    cancelled = "cancelled"


ISSUED = "status = 'issued'"
UNBILLED = "status = 'used' AND NOT billed"


class Coupon(db.Model):
    """A benefit bought with points: its code (in the QR) is random and signed, so it can be neither guessed nor
    forged; it is used once, at a store of its campaign, while valid. Its counter code (12 digits, for typing at the
    counter) is unique among the issued coupons only: the only ones a counter looks it up among, so the 10^11 codes
    are never used up, and a used or expired coupon's number may come back on a new one."""

    __tablename__ = "coupons"
    __table_args__ = (
        Index("ix_coupons_rider", "rider_id", "id"),
        Index("ix_coupons_campaign_rider", "campaign_id", "rider_id"),
        Index("ix_coupons_used_store", "used_store_id", "used_at"),
        Index("ix_coupons_issued_expiry", "expires_at", postgresql_where=text(ISSUED), sqlite_where=text(ISSUED)),
        Index("ix_coupons_counter_code_issued", "counter_code", unique=True, postgresql_where=text(ISSUED),
              sqlite_where=text(ISSUED)),
        Index("ix_coupons_campaign_issued", "campaign_id", "issued_at"),
        # The used coupons no statement has billed yet: a month's worth, whatever the years behind them.
        Index("ix_coupons_unbilled", "used_at", postgresql_where=text(UNBILLED), sqlite_where=text(UNBILLED)),
        CheckConstraint("points_spent > 0", name="points_positive"),
        CheckConstraint("(status = 'used') = (used_at IS NOT NULL)", name="used_iff_used_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    rider_id: Mapped[int] = mapped_column(ForeignKey("riders.id"))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    # A fresh one for a row added through the ORM; redeem() draws its own and retries on a clash (operations).
    counter_code: Mapped[str] = mapped_column(String(12), default=new_counter_code)
    status: Mapped[CouponStatus] = mapped_column(enum_column(CouponStatus, "coupon_status"))
    points_spent: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # the cashier
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by the settlement run that puts the used coupon on its merchant's statement (statement_lines holds which).
    billed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class UnknownCodeAttempt(db.Model):
    """An unknown code sent to a store's counter (forged, mistyped, or no issued coupon carries it). Only the last
    few minutes' rows matter (redemption.counter): the counter is refused while a store has too many of them, and
    older rows are deleted as new ones come, so a store never has more than a handful."""

    __tablename__ = "unknown_code_attempts"
    __table_args__ = (Index("ix_unknown_code_attempts_store_at", "store_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class CouponDay(db.Model):
    """A rollup: what happened to a campaign's coupons on a service day (Asia/Shanghai date of each event), kept by
    the transaction of each event (redemption.rollups): bought and the points paid, used, cancelled and the points
    refunded, expired. Per campaign and day, so a sale only locks the row its campaign's stock row already queues on.
    """

    __tablename__ = "rollup_coupon_days"
    __table_args__ = (Index("ix_rollup_coupon_days_day", "service_day"),)  # a window of days, all campaigns

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_day: Mapped[date] = mapped_column(Date, primary_key=True)
    bought: Mapped[int] = mapped_column(Integer, default=0)
    points_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    used: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    points_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    expired: Mapped[int] = mapped_column(Integer, default=0)
