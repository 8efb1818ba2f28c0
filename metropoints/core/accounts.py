"""Portal accounts looking after themselves: a forgotten password reset by e-mail, a password or profile changed,
the account's last sign-ins. A new password ends the account's other sessions (core.sessions).

A reset link is signed with the app's secret and carries the account id and a fingerprint of its current password
hash: it expires after PASSWORD_RESET_SECONDS, and it is single-use because using it changes the hash it names (as
does any other password change). Asking for a link says the same whether or not the address has an account.
"""

from __future__ import annotations

import hashlib

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from metropoints.core.db import db
from metropoints.core.errors import InvalidInput
from metropoints.core.mail import LOCALES, mail_user, public_link
from metropoints.core.models import LoginEvent, User, UserSession
from metropoints.core.operations import check_password, normalise_email, record_audit
from metropoints.core.sessions import end_others

RECENT_LOGINS = 10
_SALT = "metropoints/password-reset/v1"


class InvalidResetLink(InvalidInput):
    """A reset link that is forged, expired, or used already."""

    code = "invalid_reset_link"
    default_message = "This password reset link is not valid (any more). Ask for a new one."


class WrongPassword(InvalidInput):
    """The current password, asked before a change, does not match."""

    code = "wrong_password"
    default_message = "That is not your current password."


def _serializer() -> URLSafeTimedSerializer:
    """The signer of reset links."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _fingerprint(user: User) -> str:
    """A short digest of the account's password hash: a link names it, so a changed password voids the link."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def reset_token(user: User) -> str:
    """A signed, time-limited reset token for the account's current password."""
    return _serializer().dumps({"u": user.id, "p": _fingerprint(user)})


def request_password_reset(*, email: object) -> bool:
    """Mail a reset link to the active account with this address; True when one was queued. The caller says the
    same either way, so nobody learns which addresses have accounts."""
    try:
        address = normalise_email(email)
    except InvalidInput:
        return False
    user = db.session.scalar(select(User).where(User.email == address))
    if user is None or not user.active:
        return False
    minutes = int(current_app.config["PASSWORD_RESET_SECONDS"]) // 60
    mail_user(user, kind="account.password_reset", template="core/mail/password_reset.txt",
              link=public_link("account.reset_password", token=reset_token(user)), minutes=minutes)
    return True


def user_for_reset(token: str) -> User:
    """The account a reset link is for, while it is valid; InvalidResetLink otherwise."""
    try:
        data = _serializer().loads(token, max_age=int(current_app.config["PASSWORD_RESET_SECONDS"]))
    except BadSignature:
        raise InvalidResetLink() from None
    user_id = data.get("u") if isinstance(data, dict) else None
    user = db.session.get(User, user_id) if type(user_id) is int and 0 < user_id < 2**31 else None
    if user is None or not user.active or data.get("p") != _fingerprint(user):
        raise InvalidResetLink()
    return user


def reset_password(*, token: str, password: object) -> User:
    """Set a new password through a reset link (which it uses up)."""
    user = user_for_reset(token)
    user.password_hash = generate_password_hash(check_password(password))
    end_others(user=user, keep=None, reason="password")
    record_audit(actor=user, action="account.password_reset", subject=f"user:{user.id}")
    db.session.flush()
    return user


def change_password(*, user: User, current: object, new: object, keep: UserSession | None = None) -> None:
    """A signed-in account changes its password, proving it knows the current one; every other session of the
    account ends (all of them without `keep`, the session that changed it)."""
    if not isinstance(current, str) or not check_password_hash(user.password_hash, current):
        raise WrongPassword(field="current_password")
    user.password_hash = generate_password_hash(check_password(new))
    end_others(user=user, keep=keep, reason="password")
    record_audit(actor=user, action="account.password_change", subject=f"user:{user.id}")
    db.session.flush()


def update_profile(*, user: User, display_name: object, locale: object) -> None:
    """The account's name as others see it and the language of its mail."""
    name = display_name.strip() if isinstance(display_name, str) else ""
    if not 0 < len(name) <= 64:
        raise InvalidInput("The name must have 1 to 64 characters.", field="display_name")
    if locale not in LOCALES:
        raise InvalidInput("Unknown language.", field="locale")
    user.display_name, user.locale = name, locale
    db.session.flush()


def record_login(*, user: User, address: str | None, user_agent: str | None) -> LoginEvent:
    """Note a successful sign-in."""
    event = LoginEvent(user_id=user.id, address=(address or "")[:64], user_agent=(user_agent or "")[:255])
    db.session.add(event)
    db.session.flush()
    return event


def recent_logins(user: User, limit: int = RECENT_LOGINS) -> list[LoginEvent]:
    """The account's latest sign-ins, newest first (an index on (user_id, at): bounded, whatever the history)."""
    return list(db.session.scalars(select(LoginEvent).where(LoginEvent.user_id == user.id)
                                   .order_by(LoginEvent.at.desc(), LoginEvent.id.desc()).limit(limit)))
