"""Portal sessions kept on the server: each signed-in browser is a `user_sessions` row, so a session can end.

The session cookie (Flask's, signed) carries a random id; the table keeps only its SHA-256. Every request that asks
for the signed-in user loads the account and its session row in one query through the unique index on the hash
(`load`, called by Flask-Login's user loader), and refuses a session that ended, sat idle too long, or outlived its
lifetime (both by role: SESSION_IDLE_SECONDS[_OPERATOR], SESSION_LIFETIME_SECONDS[_OPERATOR]). `last_seen_at` is
written at most once a minute. A sign-in always makes a new row and a new id (no fixation); a password or
second-factor change ends every other session of the account.

A check of the account's factors (a code, a password asked again) must outlast a refused request: a rolled-back
unit of work would otherwise forget that a code was used. `keep_after_rollback` notes such a guarded statement,
and the unit of work's end hook runs it again, in a short transaction of its own, after a rollback.

Functions flush, never commit; they never touch the cookie (core.signin does).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.dml import Update

from metropoints.core import timeutil
from metropoints.core.db import db, on_unit_of_work_end
from metropoints.core.errors import NotFound
from metropoints.core.models import Role, User, UserSession

log = logging.getLogger(__name__)

# The key of the session id in Flask's session cookie.
COOKIE_KEY = "_sid"
SEEN_EVERY = timedelta(minutes=1)
LISTED = 50  # sessions listed on the account page at most
_KEEP = "metropoints.keep_after_rollback"


def hash_session_id(raw: str) -> str:
    """The stored form of a session id."""
    return hashlib.sha256(raw.encode()).hexdigest()


def limits(role: Role) -> tuple[timedelta, timedelta]:
    """(idle timeout, absolute lifetime) of a session of an account of this role."""
    suffix = "_OPERATOR" if role == Role.operator else ""
    config = current_app.config
    return (timedelta(seconds=int(config["SESSION_IDLE_SECONDS" + suffix])),
            timedelta(seconds=int(config["SESSION_LIFETIME_SECONDS" + suffix])))


def expiry_of(record: UserSession, role: Role, now: datetime) -> str | None:
    """Why this session is over at `now` ("signed_out", "idle", "expired"...), or None while it is live."""
    if record.ended_at is not None:
        return record.end_reason or "ended"
    idle, lifetime = limits(role)
    if now - record.created_at >= lifetime:
        return "expired"
    if now - record.last_seen_at >= idle:
        return "idle"
    return None


def begin(*, user: User, address: str | None, user_agent: str | None,
          now: datetime | None = None) -> tuple[str, UserSession]:
    """A new session for an account that has just proved its factors; (the raw id for the cookie, the row)."""
    now = now or timeutil.utcnow()
    raw = secrets.token_urlsafe(32)
    record = UserSession(token_hash=hash_session_id(raw), user_id=user.id, created_at=now, last_seen_at=now,
                         verified_at=now, address=(address or "")[:64], user_agent=(user_agent or "")[:255])
    db.session.add(record)
    db.session.flush()
    return raw, record


def load(*, user_id: int, raw: str, now: datetime | None = None) -> tuple[User, UserSession] | None:
    """The account and its live session for a cookie's user id and session id, in one indexed query; None when the
    session is unknown, another account's, or over (an idle or expired one is marked ended)."""
    now = now or timeutil.utcnow()
    found = db.session.execute(select(User, UserSession).join(UserSession, UserSession.user_id == User.id)
                               .where(UserSession.token_hash == hash_session_id(raw), User.id == user_id)).first()
    if found is None:
        return None
    user, record = found
    reason = expiry_of(record, user.role, now)
    if reason is not None:
        if record.ended_at is None:
            record.ended_at, record.end_reason = now, reason
        return None
    if now - record.last_seen_at >= SEEN_EVERY:
        record.last_seen_at = now
    return user, record


def end(*, record: UserSession, reason: str, now: datetime | None = None) -> None:
    """End one session (sign-out, or ended from another session of the account)."""
    if record.ended_at is None:
        record.ended_at, record.end_reason = now or timeutil.utcnow(), reason
        db.session.flush()


def end_by_id(raw: str, *, reason: str) -> None:
    """End the session a raw id names, if it is live (a browser that signs in again)."""
    record = db.session.scalar(select(UserSession).where(UserSession.token_hash == hash_session_id(raw)))
    if record is not None:
        end(record=record, reason=reason)


def end_others(*, user: User, keep: UserSession | None, reason: str, now: datetime | None = None) -> int:
    """End every live session of the account but `keep` (None: all of them); how many ended."""
    statement = (update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
                 .values(ended_at=now or timeutil.utcnow(), end_reason=reason)
                 .execution_options(synchronize_session="fetch"))
    if keep is not None:
        statement = statement.where(UserSession.id != keep.id)
    return db.session.execute(statement).rowcount or 0


def end_one(*, user: User, session_id: int, reason: str = "ended_elsewhere") -> None:
    """End one of the account's own sessions, by its row id; NotFound for another account's."""
    record = db.session.get(UserSession, session_id)
    if record is None or record.user_id != user.id:
        raise NotFound()
    end(record=record, reason=reason)


def live_sessions(user: User, now: datetime | None = None) -> list[UserSession]:
    """The account's live sessions, last seen first (the index on (user_id, ended_at): bounded by LISTED)."""
    now = now or timeutil.utcnow()
    rows = db.session.scalars(select(UserSession).where(UserSession.user_id == user.id,
                                                        UserSession.ended_at.is_(None))
                              .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc()).limit(LISTED))
    return [record for record in rows if expiry_of(record, user.role, now) is None]


def is_fresh(record: UserSession | None, now: datetime | None = None) -> bool:
    """True when the session proved its factors within STEP_UP_SECONDS."""
    if record is None:
        return False
    age = (now or timeutil.utcnow()) - record.verified_at
    return age < timedelta(seconds=int(current_app.config["STEP_UP_SECONDS"]))


def mark_verified(record: UserSession, now: datetime | None = None) -> None:
    """The session has just proved its factors again (kept even if the request is then refused)."""
    now = now or timeutil.utcnow()
    statement = update(UserSession).where(UserSession.id == record.id).values(verified_at=now)
    db.session.execute(statement.execution_options(synchronize_session="fetch"))
    keep_after_rollback(statement)


def keep_after_rollback(statement: Update) -> None:
    """Run this (guarded, repeatable) statement again if the unit of work is rolled back."""
    db.session.info.setdefault(_KEEP, []).append(statement)


def _forget_kept() -> None:
    """After a commit: the noted statements are written already."""
    db.session.info.pop(_KEEP, None)


def _write_kept() -> None:
    """After a rollback: write the noted statements again, in a transaction of their own. A database that fails
    here loses the note (a code could be taken again within its 90 seconds), not the reply."""
    kept = db.session.info.pop(_KEEP, None)
    if not kept:
        return
    try:
        for statement in kept:
            db.session.execute(statement.execution_options(synchronize_session=False))
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not keep %d checks after a rollback", len(kept))


on_unit_of_work_end(commit=_forget_kept, rollback=_write_kept)

_BROWSERS = (("Edg/", "Edge"), ("MicroMessenger", "WeChat"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))
_HEADLESS = re.compile(r"HeadlessChrome/")


def device_of(user_agent: str) -> str:
    """A browser's user agent as people name the device: "Chrome · Windows"; its first product name otherwise."""
    browser = "Chrome" if _HEADLESS.search(user_agent or "") else next(
        (name for mark, name in _BROWSERS if mark in (user_agent or "")), "")
    system = next((name for mark, name in _SYSTEMS if mark in (user_agent or "")), "")
    if browser or system:
        return " · ".join(part for part in (browser, system) if part)
    return (user_agent or "?").split("/")[0].split(" ")[0][:40] or "?"
