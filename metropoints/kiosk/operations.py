"""Kiosk devices: each is bound to one station and reads the feed with a kiosk token. Functions flush, never commit."""

from __future__ import annotations

from sqlalchemy import func, select

from metropoints.core.db import db
from metropoints.core.errors import InvalidInput, NotFound
from metropoints.core.models import ApiToken, Kiosk, Station, TokenKind
from metropoints.core.operations import issue_token, record_audit
from metropoints.core.timeutil import utcnow

MAX_LABEL = 120


def create_kiosk(*, station_id: str, label: str = "", actor_label: str) -> tuple[Kiosk, str]:
    """A kiosk at a station of the network and its bearer token (returned once; only its hash is kept)."""
    station_id = (station_id or "").strip()
    if len(station_id) > 8 or db.session.get(Station, station_id) is None:
        raise NotFound(f"No station {station_id!r} on the network.", field="station_id")
    label = (label or "").strip()
    if len(label) > MAX_LABEL:
        raise InvalidInput(f"The label has at most {MAX_LABEL} characters.", field="label")
    kiosk = Kiosk(station_id=station_id, label=label)
    db.session.add(kiosk)
    db.session.flush()
    raw, _ = issue_token(kind=TokenKind.kiosk, subject_id=kiosk.id, label=f"kiosk {station_id}")
    record_audit(actor=None, actor_label=actor_label, action="kiosk.create", subject=f"kiosk:{kiosk.id}",
                 reason=f"station {station_id}" + (f", {label}" if label else ""))
    return kiosk, raw


def kiosks_with_stations() -> list[tuple[Kiosk, Station, int]]:
    """Every kiosk with its station and its number of live (unrevoked, unexpired) tokens, by station then id."""
    live_tokens = (select(func.count(ApiToken.id))
                   .where(ApiToken.kind == TokenKind.kiosk, ApiToken.subject_id == Kiosk.id,
                          ApiToken.revoked_at.is_(None),
                          ApiToken.expires_at.is_(None) | (ApiToken.expires_at > utcnow()))
                   .correlate(Kiosk).scalar_subquery())
    rows = db.session.execute(select(Kiosk, Station, live_tokens).join(Station, Station.station_id == Kiosk.station_id)
                              .order_by(Kiosk.station_id, Kiosk.id))
    return [(kiosk, station, int(count)) for kiosk, station, count in rows]
