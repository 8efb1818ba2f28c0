"""Fee plans, statements and their lines, merchants' provider customers, and the provider's events.

Money is integer fen end to end (the provider's minor unit for CNY). A period is a calendar month in Asia/Shanghai,
stored as the date of its first day.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from metropoints.core.db import UTCDateTime, db
from metropoints.core.models import enum_column
from metropoints.core.timeutil import utcnow


class FeePlan(db.Model):
    """What a merchant pays from a period on: a fee per used coupon and an optional monthly listing fee.

    Plans are kept, not edited: the plan of a period is the newest one whose `effective_from` is not after it.
    An operator's change takes effect from the next period, so a statement never mixes two plans."""

    __tablename__ = "fee_plans"
    __table_args__ = (
        UniqueConstraint("merchant_id", "effective_from", name="uq_fee_plans_merchant_period"),
        CheckConstraint("fee_per_coupon_fen >= 0 AND monthly_fee_fen >= 0", name="fees_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    effective_from: Mapped[date] = mapped_column(Date)  # the first day of a period
    fee_per_coupon_fen: Mapped[int] = mapped_column(Integer)
    monthly_fee_fen: Mapped[int] = mapped_column(Integer, default=0)
    set_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BillingAccount(db.Model):
    """A merchant's customer at the payment provider, created on its first invoice."""

    __tablename__ = "billing_accounts"

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    provider_customer_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Owed statements not yet mailed as overdue (queries.OWED's statuses): the overdue job's index holds only these, so
# its daily read is bounded by what is owed now, never by the history of paid statements.
OVERDUE_UNNOTIFIED = "overdue_notified_at IS NULL AND status IN ('issued', 'payment_failed')"


class StatementStatus(enum.StrEnum):
    """Where a statement stands. `overdue` is not a status: an issued statement past its due date."""

    pending = "pending"  # built; its invoice is being created at the provider
    issued = "issued"  # invoiced and finalized: the merchant can pay
    paid = "paid"
    payment_failed = "payment_failed"  # a payment attempt failed; the invoice stays payable
    nothing_due = "nothing_due"  # a total of 0 fen: nothing to invoice
    invoice_failed = "invoice_failed"  # the provider refused the invoice for good; an operator must look


class Statement(db.Model):
    """One merchant's bill for one period: a line per used coupon, the fees, and its invoice at the provider."""

    __tablename__ = "statements"
    __table_args__ = (
        UniqueConstraint("merchant_id", "period", name="uq_statements_merchant_period"),
        CheckConstraint("total_fen = coupon_fees_fen + monthly_fee_fen", name="total_adds_up"),
        Index("ix_statements_status", "status"),
        Index("ix_statements_overdue_unnotified", "due_at", postgresql_where=text(OVERDUE_UNNOTIFIED),
              sqlite_where=text(OVERDUE_UNNOTIFIED)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    period: Mapped[date] = mapped_column(Date)
    status: Mapped[StatementStatus] = mapped_column(enum_column(StatementStatus, "statement_status"))
    currency: Mapped[str] = mapped_column(String(3))
    # The plan as it was applied, so the statement explains itself after the plan changes.
    fee_per_coupon_fen: Mapped[int] = mapped_column(Integer)
    coupon_count: Mapped[int] = mapped_column(Integer, default=0)
    coupon_fees_fen: Mapped[int] = mapped_column(Integer, default=0)
    monthly_fee_fen: Mapped[int] = mapped_column(Integer, default=0)
    total_fen: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The invoice at the provider; a unique id, so one invoice can never settle two statements.
    provider_invoice_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    invoice_number: Mapped[str] = mapped_column(String(64), default="")
    payment_url: Mapped[str] = mapped_column(Text, default="")
    invoice_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the owner was mailed that it is past due (once per statement, by the daily overdue job).
    overdue_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StatementLine(db.Model):
    """A used coupon on a statement. `coupon_id` is unique: a coupon is billed on exactly one statement."""

    __tablename__ = "statement_lines"
    __table_args__ = (CheckConstraint("fee_fen >= 0", name="fee_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), index=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fee_fen: Mapped[int] = mapped_column(Integer)


class ProviderEvent(db.Model):
    """A webhook event from the provider, kept by its id so a replayed event is recognised and applied once."""

    __tablename__ = "provider_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(80), unique=True)
    type: Mapped[str] = mapped_column(String(80))
    created: Mapped[int] = mapped_column(Integer)  # the provider's timestamp (Unix seconds)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    statement_id: Mapped[int | None] = mapped_column(ForeignKey("statements.id"))
    outcome: Mapped[str] = mapped_column(String(40))  # what applying it did, e.g. "paid", "ignored"
    payload: Mapped[str] = mapped_column(Text, default="")
