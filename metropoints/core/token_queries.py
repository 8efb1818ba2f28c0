"""Reads of the back office's token list: one kind's tokens, newest first, a page at a time, each with whose it is.

A page reads `limit + 1` rows through the (kind, id) index, whatever the number of tokens. Whose a token is: a
staff token names its account's e-mail and a rider token its rider's phone (both core's tables); a partner's name and
a kiosk's station id come from the package that owns them, which registers how to read them (`name_subjects`: core
imports no package of ours), so an operator may relabel those tokens; without a registration (core's own tests), the
label they were made with ("partner <name>", "kiosk <station_id>") names them. A kiosk's station is named from
core's stations.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, Select, and_, select

from metropoints.core.db import MAX_ID, db
from metropoints.core.models import ApiToken, Rider, Station, TokenKind, User

PAGE_SIZE = 50
MAX_SEARCH = 254
# The prefix accrual and kiosk put before the partner's name and the kiosk's station in the label.
LABEL_PREFIXES = {TokenKind.partner: "partner ", TokenKind.kiosk: "kiosk "}


@dataclass(frozen=True)
class SubjectNames:
    """How the package that owns one kind's subjects names them: `names` maps subject ids to names (one query),
    `find` is a select of the subject ids a name (as searched) stands for."""

    names: Callable[[Collection[int]], dict[int, str]]
    find: Callable[[str], Select]


_SUBJECTS: dict[TokenKind, SubjectNames] = {}


def name_subjects(kind: TokenKind, *, names: Callable[[Collection[int]], dict[int, str]],
                  find: Callable[[str], Select]) -> None:
    """Register how a partner's or kiosk's token names its subject (accrual: the partner's name; kiosk: the
    station id)."""
    _SUBJECTS[kind] = SubjectNames(names=names, find=find)


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
    kiosk's station id (exactly)."""
    query = _with_whose().where(ApiToken.kind == kind)
    search = search.strip()[:MAX_SEARCH]
    if search:
        if kind == TokenKind.staff:
            query = query.where(User.email == search.lower())
        elif kind == TokenKind.rider:
            query = query.where(Rider.phone == search)
        elif kind in _SUBJECTS:
            query = query.where(ApiToken.subject_id.in_(_SUBJECTS[kind].find(search)))
        else:
            query = query.where(ApiToken.label == LABEL_PREFIXES[kind] + search)
    if before_id is not None:
        query = query.where(ApiToken.id < min(before_id, MAX_ID))
    rows = db.session.execute(query.order_by(ApiToken.id.desc()).limit(limit + 1)).all()
    return _rows(rows[:limit]), len(rows) > limit


def token_row(token_id: int) -> TokenRow | None:
    """One token as the list shows it (its label's edit page), or None."""
    rows = db.session.execute(_with_whose().where(ApiToken.id == min(token_id, MAX_ID))).all()
    found = _rows(rows)
    return found[0] if found else None


def _with_whose() -> Select:
    """Tokens with a staff account's e-mail and a rider's phone beside them."""
    return (select(ApiToken, User.email, Rider.phone)
            .outerjoin(User, and_(ApiToken.kind == TokenKind.staff, User.id == ApiToken.subject_id))
            .outerjoin(Rider, and_(ApiToken.kind == TokenKind.rider, Rider.id == ApiToken.subject_id)))


def _rows(rows: Sequence[Row]) -> list[TokenRow]:
    """Rows of (token, e-mail, phone) as the list shows them: partners and kiosks named by their packages (a query
    for each kind on the page), the kiosks' stations in one more."""
    named = {kind: registered.names({token.subject_id for token, _, _ in rows if token.kind == kind})
             for kind, registered in _SUBJECTS.items() if any(token.kind == kind for token, _, _ in rows)}
    subjects = [(token, email or phone or named.get(token.kind, {}).get(token.subject_id) or _named(token))
                for token, email, phone in rows]
    stations = _station_names({subject for token, subject in subjects if token.kind == TokenKind.kiosk} - {""})
    return [_row(token, subject, stations) for token, subject in subjects]


def _station_names(ids: set[str]) -> dict[str, tuple[str, str]]:
    """station_id -> (name_zh, name_en) for these stations (one query)."""
    if not ids:
        return {}
    rows = db.session.execute(select(Station.station_id, Station.name_zh, Station.name_en)
                              .where(Station.station_id.in_(ids)))
    return {station_id: (name_zh, name_en) for station_id, name_zh, name_en in rows}


def _named(token: ApiToken) -> str:
    """What a partner's or kiosk's label names after its prefix ("" for any other label)."""
    prefix = LABEL_PREFIXES.get(token.kind, "")
    return token.label[len(prefix):] if prefix and token.label.startswith(prefix) else ""


def _row(token: ApiToken, subject: str, stations: dict[str, tuple[str, str]]) -> TokenRow:
    """A token with whose it is ("#<subject id>" when nothing names it)."""
    return TokenRow(id=token.id, kind=token.kind, label=token.label, subject=subject or f"#{token.subject_id}",
                    station=stations.get(subject) if token.kind == TokenKind.kiosk and subject else None,
                    created_at=token.created_at,
                    expires_at=token.expires_at, last_used_at=token.last_used_at, revoked_at=token.revoked_at,
                    revoked_by=token.revoked_by, revoke_reason=token.revoke_reason)
