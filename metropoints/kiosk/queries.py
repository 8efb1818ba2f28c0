"""Reads about kiosks for other pages: the station a kiosk's token stands for, on the back office's token list."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Select, select

from metropoints.core.db import db
from metropoints.core.models import TokenKind
from metropoints.core.token_queries import name_subjects
from metropoints.kiosk.models import Kiosk


def kiosk_stations(ids: Collection[int]) -> dict[int, str]:
    """kiosk id -> its station's id, for these kiosks (one query)."""
    if not ids:
        return {}
    return {kiosk_id: station_id for kiosk_id, station_id in
            db.session.execute(select(Kiosk.id, Kiosk.station_id).where(Kiosk.id.in_(ids)))}


def kiosks_at(station_id: str) -> Select:
    """The ids of the kiosks at this station (as searched on the token list)."""
    return select(Kiosk.id).where(Kiosk.station_id == station_id.strip())


def register_token_names() -> None:
    """The token list names a kiosk's token by its station, whatever its label says (create_app calls this)."""
    name_subjects(TokenKind.kiosk, names=kiosk_stations, find=kiosks_at)
