"""The carbon exports: what was sent to a carbon registry, a line per trip the first time it is exported and a line
per later change of an exported trip (never an edit of what was sent)."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from metropoints.accrual.models import TripMode
from metropoints.core.db import UTCDateTime, db
from metropoints.core.models import enum_column
from metropoints.core.timeutil import utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class ExportLineKind(enum.StrEnum):
    """What an export line is."""

    trip = "trip"  # a trip's first export: its km, grams and points as credited then
    adjustment = "adjustment"  # a later change of an exported trip (its figures, or it stopped counting): the change


class CarbonExport(db.Model):
    """One run of `flask carbon export` for a period (a month of service days), with the summary it wrote."""

    __tablename__ = "carbon_exports"
    __table_args__ = (Index("ix_carbon_exports_period", "period", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[date] = mapped_column(Date)  # the month's first day
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))
    trip_lines: Mapped[int] = mapped_column(Integer, default=0)
    adjustment_lines: Mapped[int] = mapped_column(Integer, default=0)
    summary_json: Mapped[str] = mapped_column(Text, default="")  # the JSON summary written, the files' SHA-256 in it


class CarbonExportLine(db.Model):
    """A line of an export. A trip has at most one `trip` line across every export (a unique index); the figures a
    registry holds for a trip are the sum of its lines, so a correction is a new `adjustment` line of the difference.
    """

    __tablename__ = "carbon_export_lines"
    __table_args__ = (
        Index("uq_carbon_export_trip", "trip_pk", unique=True, postgresql_where=text("kind = 'trip'"),
              sqlite_where=text("kind = 'trip'")),
        Index("ix_carbon_export_lines_day", "service_day", "trip_pk"),  # an export's check for corrections
        Index("ix_carbon_export_lines_export", "export_id", "mode", "id"),  # an export's files
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("carbon_exports.id"))
    kind: Mapped[ExportLineKind] = mapped_column(enum_column(ExportLineKind, "export_line_kind"))
    trip_pk: Mapped[int] = mapped_column(BigId)  # trips are never deleted (a trigger refuses it)
    service_day: Mapped[date] = mapped_column(Date)  # the trip's, so the period's lines and its partition go together
    mode: Mapped[TripMode] = mapped_column(enum_column(TripMode, "export_mode"))
    rule_version_id: Mapped[int] = mapped_column(Integer)
    distance_m: Mapped[int] = mapped_column(Integer)
    co2e_grams: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)

