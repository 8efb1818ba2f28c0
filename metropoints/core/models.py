"""Shared by every package: the metro's stations, riders, portal users with roles, API tokens, idempotency records."""

from __future__ import annotations

import enum
from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from metropoints.core.db import UTCDateTime, db
from metropoints.core.timeutil import utcnow


def enum_column(enum_cls: type[enum.Enum], name: str) -> Enum:
    """A string-valued enum column with a CHECK constraint, stored as the member's value."""
    return Enum(enum_cls, name=name, native_enum=False, create_constraint=True, length=24,
                values_callable=lambda members: [m.value for m in members], validate_strings=True)


class Role(enum.StrEnum):
    """What a portal account may do. Riders are not portal accounts; they use the rider API."""

    operator = "operator"  # the metro business team
    merchant_owner = "merchant_owner"
    cashier = "cashier"


class TokenKind(enum.StrEnum):
    """Who holds a bearer token."""

    rider = "rider"
    partner = "partner"
    kiosk = "kiosk"
    staff = "staff"


class Station(db.Model):
    """A station of the real network (loaded from accrual's packaged data), for trips, stores and kiosks to name."""

    __tablename__ = "stations"

    station_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    lines: Mapped[str] = mapped_column(String(32))  # e.g. "1,2"
    opened: Mapped[date] = mapped_column(Date)


class Rider(db.Model):
    """A rider: registered by phone, earning points for trips; the balance is the sum of their ledger entries."""

    __tablename__ = "riders"
    __table_args__ = (CheckConstraint("points_balance >= 0", name="balance_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(64))
    # Kept equal to the sum of ledger_entries.points in the same transaction as every entry.
    points_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(UserMixin, db.Model):
    """A portal account: an operator of the metro business team, a merchant owner or a cashier."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(enum_column(Role, "role"))
    display_name: Mapped[str] = mapped_column(String(64), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The language of the account's e-mail (and its pages, unless the session chose another): zh or en.
    locale: Mapped[str] = mapped_column(String(8), default="zh", server_default="zh")

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        """Flask-Login refuses inactive accounts."""
        return self.active


class ApiToken(db.Model):
    """A bearer token; only its SHA-256 is stored, so a database leak does not leak usable tokens."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_subject", "kind", "subject_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[TokenKind] = mapped_column(enum_column(TokenKind, "token_kind"))
    # riders.id, partners.id, kiosks.id or users.id according to kind.
    subject_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyRecord(db.Model):
    """The first reply to a write sent with an Idempotency-Key; a repeat gets this reply and changes nothing."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))  # token kind and subject: one client's keys never meet another's
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(db.Model):
    """A decision by an operator (rule change, adjustment, token issued): who, when, what and why."""

    __tablename__ = "audit_log"
    # The audit log's date filter reads the entries of those days, not every newer one.
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(120))  # e.g. "cli" when run from the command line
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(Text, default="")


class LoginEvent(db.Model):
    """A successful portal sign-in: when, from where, with what; the account page shows the latest ones."""

    __tablename__ = "login_events"
    __table_args__ = (Index("ix_login_events_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")


class MailStatus(enum.StrEnum):
    """Where an e-mail is: queued for the mail job, handed to the SMTP server, or given up after the retries."""

    queued = "queued"
    sent = "sent"
    failed = "failed"


class OutgoingMail(db.Model):
    """An e-mail the platform sends: rendered in the recipient's language when queued, sent by an rq job after the
    commit (retried), kept so operators see what went out and what failed."""

    __tablename__ = "outgoing_mail"
    __table_args__ = (Index("ix_outgoing_mail_status", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(64))  # e.g. "merchant.approved": what the mail is about
    locale: Mapped[str] = mapped_column(String(8))
    status: Mapped[MailStatus] = mapped_column(enum_column(MailStatus, "mail_status"), default=MailStatus.queued)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RiderDay(db.Model):
    """A rollup: riders registered on a service day (the Asia/Shanghai date of the registration); core.rollups."""

    __tablename__ = "rollup_rider_days"

    service_day: Mapped[date] = mapped_column(Date, primary_key=True)
    registered: Mapped[int] = mapped_column(Integer, default=0)
