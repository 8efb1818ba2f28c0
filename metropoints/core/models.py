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
    # The rider's carbon account per mode: the metres, grams CO2e and points of their credited and capped trips,
    # added by the statements that credit trips (accrual.rollups), so the rider's own figures (GET /api/v1/me) are
    # this row, never the trips (a rider of years has thousands, in every month's partition). One set per mode of
    # accrual.models.TripMode (tests/accrual/test_rider_figures.py holds the two lists together).
    metro_metres: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    metro_co2e_grams: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    metro_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bus_metres: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bus_co2e_grams: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bus_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bike_metres: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bike_co2e_grams: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bike_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    walk_metres: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    walk_co2e_grams: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    walk_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


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
    # The second factor (core.twofactor): the TOTP secret, encrypted with a key derived from SECRET_KEY (None: the
    # account has no second factor), and the last 30-second step whose code was accepted (no code is taken twice).
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    second_factor_since: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def has_second_factor(self) -> bool:
        """True when sign-in asks this account for a code after the password."""
        return self.totp_secret is not None

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        """Flask-Login refuses inactive accounts."""
        return self.active


class ApiToken(db.Model):
    """A bearer token; only its SHA-256 is stored, so a database leak does not leak usable tokens."""

    __tablename__ = "api_tokens"
    # The back office lists one kind's tokens newest first (kind, id); the API looks a subject's tokens up.
    __table_args__ = (Index("ix_api_tokens_subject", "kind", "subject_id"),
                      Index("ix_api_tokens_kind_id", "kind", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[TokenKind] = mapped_column(enum_column(TokenKind, "token_kind"))
    # riders.id, partners.id, kiosks.id or users.id according to kind.
    subject_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Written at most once a minute (core.api's probe reads it and writes only a stale value), so it is as exact
    # as that: a token used now shows a last use within the last minute.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who revoked it: the operator's e-mail, "holder" for the holder's own logout, "cli"; and why.
    revoked_by: Mapped[str] = mapped_column(String(120), default="", server_default="")
    revoke_reason: Mapped[str] = mapped_column(Text, default="", server_default="")


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


class UserSession(db.Model):
    """A signed-in browser (core.sessions): the session cookie carries a random id, only its SHA-256 is kept; it ends
    on sign-out, from another session of the account, on a password or second-factor change, or by its timeouts."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user_ended", "user_id", "ended_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Written at most once a minute, so it is as exact as that.
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When this session last proved the account's factors: the code for an account with a second factor, the
    # password for one without (at sign-in, or asked again before moving money or points).
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str] = mapped_column(String(24), default="")


class RecoveryCode(db.Model):
    """A single-use code that stands in for the authenticator app; only an HMAC of it, with a salt of its own, is
    kept (core.twofactor)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    salt: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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
