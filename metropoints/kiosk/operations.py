"""Kiosk devices: each is bound to one station and reads the feed with a kiosk token. Functions flush, never commit.

A kiosk's token is checked in the database once per KIOSK_TOKEN_TTL_SECONDS (default 5) in each web process; in
between, a poll with the same token costs no query. The trade-off: a token revoked (or a kiosk removed) in that
window still reads the feed until the window ends, at most the TTL later. That is acceptable here because the feed
is the public catalogue and city counter, nothing a revoked screen could misuse; an unknown token, or one of another
kind, is never cached and is refused at once. KIOSK_TOKEN_TTL_SECONDS = 0 checks every poll in the database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from metropoints.core.db import db
from metropoints.core.errors import Forbidden, InvalidInput, InvalidToken, NotFound
from metropoints.core.models import ApiToken, Station, TokenKind
from metropoints.core.operations import hash_token, issue_token, record_audit, resolve_token
from metropoints.core.timeutil import utcnow
from metropoints.kiosk.cache import TtlCache, app_cache
from metropoints.kiosk.models import Kiosk

MAX_LABEL = 120
DEFAULT_TOKEN_TTL_SECONDS = 5.0


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


def kiosk_station(raw_token: str, *, now: datetime | None = None) -> tuple[str, datetime | None]:
    """The station of the kiosk whose live token this is, and when the token expires (None: never). InvalidToken
    for a token that is unknown, expired or revoked (or whose kiosk is gone); Forbidden for another kind's token."""
    token = resolve_token(raw_token, at=now)
    if token is None:
        raise InvalidToken()
    if token.kind != TokenKind.kiosk:
        raise Forbidden("This needs a kiosk token.")
    station_id = db.session.scalar(select(Kiosk.station_id).where(Kiosk.id == token.subject_id))
    if station_id is None:
        raise InvalidToken()
    return station_id, token.expires_at


def token_cache() -> TtlCache[str]:
    """The app's cache of kiosk token (hash) -> station, in this process only: a hit costs no round trip at all."""
    return app_cache("kiosk-token", ttl_setting="KIOSK_TOKEN_TTL_SECONDS", default_ttl=DEFAULT_TOKEN_TTL_SECONDS)


def cached_kiosk_station(raw_token: str) -> str:
    """`kiosk_station` through the token cache (see the module's note on revocation); a token that expires within
    the TTL is kept only until it expires."""

    def check() -> tuple[str, float | None]:
        station_id, expires_at = kiosk_station(raw_token)
        return station_id, expires_at.timestamp() if expires_at is not None else None

    return token_cache().get(hash_token(raw_token), check)
