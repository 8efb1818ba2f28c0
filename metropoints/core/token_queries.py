"""Reads of the back office's token list: one kind's tokens, newest first, a page at a time, each with whose it is.

A page reads `limit + 1` rows through the (kind, id) index, whatever the number of tokens. Whose a token is: a
staff token names its account's e-mail and a rider token its rider's phone (both core's tables); a partner's and a
kiosk's name is the label written when the token was made ("partner <name>", "kiosk <station_id>": core imports no
package of ours), the kiosk's station named from core's stations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select

from metropoints.core.db import MAX_ID, db
from metropoints.core.models import ApiToken, Rider, Station, TokenKind, User

PAGE_SIZE = 50
MAX_SEARCH = 254
# The prefix accrual and kiosk put before the partner's name and the kiosk's station in the label.
LABEL_PREFIXES = {TokenKind.partner: "partner ", TokenKind.kiosk: "kiosk "}


@dataclass(frozen=True)
class TokenRow:
    """A token as the list shows it."""

    id: int
    kind: TokenKind
    label: str
    subject: str  # whose it is: an e-mail, a phone, a partner's name, a station id
    station: tuple[str, str] | None  # a kiosk's station, (name_zh, name_en), when the label names one
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str
    revoke_reason: str

    def state(self, now: datetime) -> str:
        """live, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "live"


def token_page(*, kind: TokenKind, search: str = "", before_id: int | None = None,
               limit: int = PAGE_SIZE) -> tuple[list[TokenRow], bool]:
    """One kind's tokens newest first, before `before_id` (a keyset cursor), at most `limit`; and whether more
    follow. `search` narrows them: a rider's phone, a staff account's e-mail (exactly), a partner's name or a
    kiosk's station id (the label's end, exactly)."""
    query = (select(ApiToken, User.email, Rider.phone)
             .outerjoin(User, and_(ApiToken.kind == TokenKind.staff, User.id == ApiToken.subject_id))
             .outerjoin(Rider, and_(ApiToken.kind == TokenKind.rider, Rider.id == ApiToken.subject_id))
             .where(ApiToken.kind == kind))
    search = search.strip()[:MAX_SEARCH]
    if search:
        if kind == TokenKind.staff:
            query = query.where(User.email == search.lower())
        elif kind == TokenKind.rider:
            query = query.where(Rider.phone == search)
        else:
            query = query.where(ApiToken.label == LABEL_PREFIXES[kind] + search)
    if before_id is not None:
        query = query.where(ApiToken.id < min(before_id, MAX_ID))
    rows = db.session.execute(query.order_by(ApiToken.id.desc()).limit(limit + 1)).all()
    stations = _station_names([token for token, _, _ in rows[:limit] if token.kind == TokenKind.kiosk])
    found = [_row(token, email, phone, stations) for token, email, phone in rows[:limit]]
    return found, len(rows) > limit


def _station_names(kiosk_tokens: list[ApiToken]) -> dict[str, tuple[str, str]]:
    """station_id -> (name_zh, name_en) for the stations the kiosk tokens' labels name (one query)."""
    ids = {_named(token) for token in kiosk_tokens} - {""}
    if not ids:
        return {}
    rows = db.session.execute(select(Station.station_id, Station.name_zh, Station.name_en)
                              .where(Station.station_id.in_(ids)))
    return {station_id: (name_zh, name_en) for station_id, name_zh, name_en in rows}


def _named(token: ApiToken) -> str:
    """What a partner's or kiosk's label names after its prefix ("" for any other label)."""
    prefix = LABEL_PREFIXES.get(token.kind, "")
    return token.label[len(prefix):] if prefix and token.label.startswith(prefix) else ""


def _row(token: ApiToken, email: str | None, phone: str | None, stations: dict[str, tuple[str, str]]) -> TokenRow:
    """A token with whose it is."""
    if token.kind == TokenKind.staff:
        subject = email
    elif token.kind == TokenKind.rider:
        subject = phone
    else:
        subject = _named(token)
    return TokenRow(id=token.id, kind=token.kind, label=token.label, subject=subject or f"#{token.subject_id}",
                    station=stations.get(subject or "") if token.kind == TokenKind.kiosk else None,
                    created_at=token.created_at,
                    expires_at=token.expires_at, last_used_at=token.last_used_at, revoked_at=token.revoked_at,
                    revoked_by=token.revoked_by, revoke_reason=token.revoke_reason)
