"""The kiosk's own table: the big screens in stations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from metropoints.core.db import UTCDateTime, db
from metropoints.core.timeutil import utcnow


class Kiosk(db.Model):
    """A big screen in a station; it reads the kiosk feed with a token bound to its station."""

    __tablename__ = "kiosks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.station_id"), index=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
