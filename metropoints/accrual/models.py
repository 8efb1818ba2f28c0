"""Accrual: stations, partners, accrual rule versions per mode, bus lines, trips, their reviews, trip batches and the
points ledger."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from metropoints.core.db import UTCDateTime, db
from metropoints.core.models import enum_column
from metropoints.core.timeutil import utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for the big tables.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Partner(db.Model):
    """A trip-feed partner: the fare system, the city app, Alipay."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TripMode(enum.StrEnum):
    """How a rider travelled. Each mode has its own rule versions and its own row shape in the partner feed."""

    metro = "metro"
    bus = "bus"
    bike = "bike"  # a shared-bike ride
    walk = "walk"  # a rider's daily step count


class RuleVersion(db.Model):
    """One version of the accrual rules of one mode. Never edited: a change is a new version from a moment on.

    Numbers are kept as integers so SQL on any database computes the same: points per km (and per 1,000 steps) in
    thousandths, the CO2e factor in milligrams per km, a step's length in millimetres. `daily_cap` limits a rider's
    points of a service day across every mode; `mode_cap`, when set, limits those of this mode alone. Walking earns
    `points_per_1000_steps_milli` for each 1,000 steps above `steps_threshold` a day, and walks `mm_per_step` a step
    (its km and CO2e); the other modes earn `points_per_km_milli`.
    """

    __tablename__ = "rule_versions"
    __table_args__ = (
        UniqueConstraint("mode", "effective_from"),
        CheckConstraint("points_per_km_milli >= 0", name="points_per_km_not_negative"),
        CheckConstraint("daily_cap >= 0", name="cap_not_negative"),
        CheckConstraint("co2e_mg_per_km >= 0", name="factor_not_negative"),
        CheckConstraint("mode_cap IS NULL OR mode_cap >= 0", name="mode_cap_not_negative"),
        CheckConstraint("steps_threshold >= 0 AND points_per_1000_steps_milli >= 0 AND mm_per_step >= 0",
                        name="walk_rules_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[TripMode] = mapped_column(enum_column(TripMode, "rule_mode"), default=TripMode.metro,
                                           server_default=TripMode.metro.value)
    points_per_km_milli: Mapped[int] = mapped_column(Integer)
    daily_cap: Mapped[int] = mapped_column(Integer)
    mode_cap: Mapped[int | None] = mapped_column(Integer)
    co2e_mg_per_km: Mapped[int] = mapped_column(Integer)
    factor_name: Mapped[str] = mapped_column(String(120))  # what the CO2e factor is
    factor_source: Mapped[str] = mapped_column(String(255), default="", server_default="")  # where it comes from
    steps_threshold: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    points_per_1000_steps_milli: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    mm_per_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    note: Mapped[str] = mapped_column(Text, default="")


class BusLine(db.Model):
    """A bus line the feed may name, with the average trip distance operators set (used when a row has none)."""

    __tablename__ = "bus_lines"
    __table_args__ = (CheckConstraint("avg_trip_m IS NULL OR (avg_trip_m > 0 AND avg_trip_m <= 100000)",
                                      name="avg_trip_m_plausible"),)

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    avg_trip_m: Mapped[int | None] = mapped_column(Integer)  # None: the city default (BUS_DEFAULT_TRIP_M)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120), default="")


class TripStatus(enum.StrEnum):
    """What became of an accepted trip."""

    credited = "credited"  # earned its points (possibly 0 for a very short ride)
    capped = "capped"  # earned less than its distance gives, or nothing, because of the daily cap
    held = "held"  # nobody has linked its rider reference yet
    review = "review"  # looks farmed (too many a day, back and forth, overlapping): no points until an operator decides
    refused = "refused"  # an operator refused it after review
    duplicate = "duplicate"  # the same physical trip (or a lower step count of the day) credited from another report


class HoldReason(enum.StrEnum):
    """Why a trip is not credited (trips.reason; empty for credited, capped and held trips)."""

    reported_by_other_source = "reported_by_other_source"  # the same metro ride, from another source
    step_count_not_higher = "step_count_not_higher"  # a walking day already counted with as many steps or more
    too_many_trips = "too_many_trips"  # more trips in the rider's day than REVIEW_TRIPS_PER_DAY
    back_and_forth = "back_and_forth"  # between the same two stations more than REVIEW_BACK_AND_FORTH times a day
    overlapping = "overlapping"  # overlaps in time another trip of the rider's (any mode or source)
    refused_by_operator = "refused_by_operator"


class Trip(db.Model):
    """An accepted trip. (source, trip_id) is unique (TripKey): a trip is credited at most once, whatever is replayed.

    On PostgreSQL the table is partitioned by month of `service_day` (the Asia/Shanghai date of the exit), its
    primary key is (id, service_day) and ids come from one sequence. The service day is what the hot paths name:
    the daily cap per rider and day, the held-trip sweep (30 days back), the per-day figures. A rider's own pages
    go newest first by id, one index probe in each month. SQLite keeps a plain table with unique (source, trip_id).
    """

    __tablename__ = "trips"
    __table_args__ = (
        Index("ix_trips_rider_day", "rider_id", "service_day"),
        Index("ix_trips_held_ref", "source", "rider_ref", postgresql_where=text("status = 'held'"),
              sqlite_where=text("status = 'held'")),
        # The review queue, oldest day first.
        Index("ix_trips_review", "service_day", "id", postgresql_where=text("status = 'review'"),
              sqlite_where=text("status = 'review'")),
        CheckConstraint("points >= 0", name="points_not_negative"),
        CheckConstraint("(status = 'held') = (rider_id IS NULL)", name="held_iff_no_rider"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    trip_id: Mapped[str] = mapped_column(String(64))
    # batch_id, rider_id and rule_version_id name rows that can never be deleted (triggers refuse it), so they
    # carry no foreign key: checking them, one lookup and row lock per trip, was half the ingestion time.
    batch_id: Mapped[int] = mapped_column(Integer)
    rider_ref: Mapped[str] = mapped_column(String(64))
    rider_id: Mapped[int | None] = mapped_column(Integer)
    mode: Mapped[TripMode] = mapped_column(enum_column(TripMode, "trip_mode"), default=TripMode.metro,
                                           server_default=TripMode.metro.value)
    # Metro trips name their stations; other modes keep them empty. A bus trip names its line, a walk its steps.
    entry_station: Mapped[str] = mapped_column(String(8))
    exit_station: Mapped[str] = mapped_column(String(8))
    line: Mapped[str | None] = mapped_column(String(16))
    steps: Mapped[int | None] = mapped_column(Integer)
    # A bus trip without an alighting time and a walk (its day, from midnight to the last second) keep times too, so
    # every trip has a service day and an order in it.
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime] = mapped_column(UTCDateTime)
    service_day: Mapped[date] = mapped_column(Date)
    distance_m: Mapped[int] = mapped_column(Integer)
    rule_version_id: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    co2e_grams: Mapped[int] = mapped_column(Integer)
    status: Mapped[TripStatus] = mapped_column(enum_column(TripStatus, "trip_status"))
    reason: Mapped[str] = mapped_column(String(32), default="", server_default="")  # a HoldReason, or empty
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReviewDecision(enum.StrEnum):
    """What an operator decided about a trip held for review."""

    credited = "credited"
    refused = "refused"


class TripReview(db.Model):
    """An operator's decision about a trip held for review: who, when, what, why. One per trip."""

    __tablename__ = "trip_reviews"
    __table_args__ = (CheckConstraint("length(reason) > 0", name="review_has_reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trip_pk: Mapped[int] = mapped_column(BigId, unique=True)
    service_day: Mapped[date] = mapped_column(Date)  # the trip's partition
    decision: Mapped[ReviewDecision] = mapped_column(enum_column(ReviewDecision, "review_decision"))
    reason: Mapped[str] = mapped_column(Text)
    points: Mapped[int] = mapped_column(Integer, default=0)  # what the trip earned when credited (cap applied)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by: Mapped[str] = mapped_column(String(120))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TripKey(db.Model):
    """The claim of a (source, trip_id), across every month of trips: the ingestion statement inserts it
    (ON CONFLICT DO NOTHING) before the trip, so a resend is a duplicate even when its exit falls in another month.
    Names the trip it admitted and its service day (the trip's partition)."""

    __tablename__ = "trip_keys"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    trip_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trip_pk: Mapped[int] = mapped_column(BigId)
    service_day: Mapped[date] = mapped_column(Date)


class BatchStatus(enum.StrEnum):
    """Where a trip batch stands."""

    processing = "processing"
    done = "done"
    failed = "failed"


class TripBatch(db.Model):
    """One delivery of trips: an API call, or a file loaded in chunks. Counts add up to rows_done."""

    __tablename__ = "trip_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    channel: Mapped[str] = mapped_column(String(8))  # "api" or "file"
    filename: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[BatchStatus] = mapped_column(enum_column(BatchStatus, "batch_status"))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    credited: Mapped[int] = mapped_column(Integer, default=0)
    capped: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    review: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TripBatchChunk(db.Model):
    """A slice of a file import waiting for a worker; its rows are dropped once it is processed."""

    __tablename__ = "trip_batch_chunks"
    __table_args__ = (UniqueConstraint("batch_id", "chunk_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("trip_batches.id"))
    chunk_no: Mapped[int] = mapped_column(Integer)
    first_line: Mapped[int] = mapped_column(Integer)
    rows_json: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TripRejection(db.Model):
    """A trip row that was refused, with the reason and the row as it came, so nothing is lost silently."""

    __tablename__ = "trip_rejections"
    __table_args__ = (Index("ix_trip_rejections_batch", "batch_id", "line_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("trip_batches.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    trip_id: Mapped[str] = mapped_column(String(255), default="")
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    row_json: Mapped[str] = mapped_column(Text)


class RiderLink(db.Model):
    """A rider's account reference at a trip source (a fare-card id, an app user id). One rider per reference."""

    __tablename__ = "rider_links"
    __table_args__ = (UniqueConstraint("source", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rider_id: Mapped[int] = mapped_column(ForeignKey("riders.id"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EntryKind(enum.StrEnum):
    """Why a ledger entry exists."""

    trip = "trip"  # credit for a trip
    redemption = "redemption"  # debit for a coupon
    refund = "refund"  # credit for a cancelled coupon
    expiry = "expiry"  # debit of points past the end of the year after they were earned
    adjustment = "adjustment"  # an operator's correction, with a reason


class LedgerEntry(db.Model):
    """One movement of a rider's points. Append-only: a correction is a new entry, never an edit.

    On PostgreSQL the table is partitioned by month of `earned_on`, its primary key is (rider_id, id, earned_on) (it
    serves the rider's pages, newest first by id, in place of ix_ledger_rider there) and ids come from one sequence:
    the year-end expiry reads only the months of the year it closes. What must be unique across
    all months is kept elsewhere: a trip's credit by (trip_pk, earned_on), since a trip's entry is earned on its
    trip's service day; a coupon's payment and refund and a rider's yearly expiry by LedgerKey (a trigger).
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        # SQLite's; on PostgreSQL the primary key (rider_id, id, earned_on) serves instead (one index fewer to write).
        Index("ix_ledger_rider", "rider_id", "id"),
        # A trip is credited at most once, whatever the code above does.
        Index("uq_ledger_trip", "trip_pk", "earned_on", unique=True),
        # One expiry per rider and year (LedgerKey holds it across months; this finds it).
        Index("uq_ledger_expiry", "rider_id", "ref", "earned_on", unique=True,
              postgresql_where=text("kind = 'expiry'"), sqlite_where=text("kind = 'expiry'")),
        CheckConstraint("points <> 0", name="points_not_zero"),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        CheckConstraint("kind <> 'trip' OR (trip_pk IS NOT NULL AND points > 0)", name="trip_credit_names_trip"),
        CheckConstraint("kind <> 'adjustment' OR length(reason) > 0", name="adjustment_has_reason"),
        CheckConstraint("kind <> 'expiry' OR points < 0", name="expiry_is_debit"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rider_id: Mapped[int] = mapped_column(Integer)  # riders are never deleted (a trigger refuses it)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The service day the points count as earned (credits) or spent (debits); expiry goes by its year.
    earned_on: Mapped[date] = mapped_column(Date)
    points: Mapped[int] = mapped_column(Integer)
    kind: Mapped[EntryKind] = mapped_column(enum_column(EntryKind, "entry_kind"))
    # Like trips.batch_id: riders, trips and rule versions are never deleted (triggers refuse it), and a trip's
    # entry is written by the same statement as the trip, so these carry no per-row foreign-key check.
    trip_pk: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    rule_version_id: Mapped[int | None] = mapped_column(Integer)
    ref: Mapped[str] = mapped_column(String(64), default="")  # coupon id, expiry year, ...
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(120), default="")
    balance_after: Mapped[int] = mapped_column(BigInteger)


class TripDay(db.Model):
    """A rollup: the credited and capped trips of a service day in one mode under one rule version, with their
    metres, points and grams CO2e (accrual.rollups keeps it in the transactions that credit trips)."""

    __tablename__ = "rollup_trip_days"

    service_day: Mapped[date] = mapped_column(Date, primary_key=True)
    # The mode of the row's rule version (accrual.rollups: the writers read it from the version).
    mode: Mapped[TripMode] = mapped_column(enum_column(TripMode, "rollup_trip_mode"), primary_key=True,
                                           server_default=TripMode.metro.value)
    rule_version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trips: Mapped[int] = mapped_column(Integer, default=0)
    metres: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    co2e_grams: Mapped[int] = mapped_column(BigInteger, default=0)


class RiderYear(db.Model):
    """A rollup: the points a rider was credited (positive ledger entries) with an `earned_on` in a calendar year.

    A trigger on ledger_entries adds each statement's credits (on PostgreSQL once per statement, from its new rows),
    so every writer of the ledger keeps it without knowing of it. The year-end expiry reads it instead of a year of
    entries: what is left of the old points is the balance less what was credited since the year began.
    """

    __tablename__ = "rollup_rider_years"

    rider_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerKey(db.Model):
    """What may be posted once across every month of the ledger, claimed by a trigger as the entry is inserted:
    a coupon's redemption and its refund (key "coupon:<id>") and a rider's expiry of a year (key "<rider>:<year>").
    A second claim violates the primary key, so the entry is refused."""

    __tablename__ = "ledger_keys"

    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    key: Mapped[str] = mapped_column(String(160), primary_key=True)


class TripChange(db.Model):
    """A trip changed after it was stored (a review decision, a held trip credited on linking), named by the
    statement that changed it (accrual.rollups.record_trip_changes); the carbon export takes and empties these, so a
    change to a trip of a month it exported is in its next export without reading the months exported before."""

    __tablename__ = "trip_changes"

    trip_pk: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    service_day: Mapped[date] = mapped_column(Date)  # the trip's, to reach its partition
