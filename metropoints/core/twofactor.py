"""The second factor: TOTP codes (RFC 6238, pyotp) from an authenticator app, and single-use recovery codes.

Who must have one: every operator (the metro team holds the keys to the money), and whoever a registered rule
names (`second_factor_required_for`: marketplace adds the cashiers of a merchant whose owner asks for it); for
anyone else it is optional.

The secret is stored encrypted (Fernet) with a key derived from SECRET_KEY by HKDF; keys derived from
SECRET_KEY_FALLBACKS still decrypt, so the secret key can be rotated. A code is accepted in its 30-second step or one
step either side (clock drift), and only for a step after the last one the account used: one guarded UPDATE of
`users.totp_last_step` decides, so a code is never taken twice, not even by two requests at once. Recovery codes
(ten, shown once) are kept as HMAC-SHA256 with a salt each, and each is spent by a guarded UPDATE of its `used_at`.
Both writes are kept after a rollback of the request (core.sessions.keep_after_rollback).

Functions flush, never commit, and take the acting account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import delete, func, or_, select, update

from metropoints.core import sessions, timeutil
from metropoints.core.db import db
from metropoints.core.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from metropoints.core.models import RecoveryCode, Role, User, UserSession
from metropoints.core.operations import record_audit

STEP_SECONDS = 30
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper without doubt
_HKDF_INFO = b"metropoints/totp-secret/v1"
_TOTP = re.compile(r"^[0-9]{6}$")

_RULES: list[Callable[[User], bool]] = []


class WrongCode(InvalidInput):
    """The code is not the app's current one, was used already, or is not a recovery code of the account."""

    code = "wrong_code"
    default_message = "That code is not valid. Type the current code from your app, or an unused recovery code."


class SecondFactorRequired(Conflict):
    """This account may not be without a second factor."""

    code = "second_factor_required"
    default_message = "This account must keep a second factor."


class CodeNeeded(Unauthorized):
    """The API's sign-in (the POS's staff token) of an account with a second factor came without a valid code."""

    code = "second_factor_required"
    default_message = ("This account has a second factor: send `otp`, the current 6-digit code from the "
                       "authenticator app or an unused recovery code.")


class NotEnrolled(Forbidden):
    """The account must have a second factor and has none yet: it enrols in the portal before the API signs it in."""

    code = "second_factor_not_enrolled"
    default_message = ("This account must have a second factor: sign in to the portal once and set it up there, "
                       "then use the code from the app here.")


class ResetOwnSecondFactor(Forbidden):
    """An operator resets other accounts' second factors, not their own (their account page does that)."""

    code = "reset_own_second_factor"
    default_message = "Reset another account's second factor; yours is changed on your account page."


def second_factor_required_for(rule: Callable[[User], bool]) -> Callable[[User], bool]:
    """Register a rule that says whether an account must have a second factor; usable as a decorator."""
    if rule not in _RULES:
        _RULES.append(rule)
    return rule


def required_for(user: User) -> bool:
    """Whether the account must have a second factor: every operator, and whoever a registered rule names. Tests of
    other packages may sign operators in without one (TESTING_OPERATORS_WITHOUT_SECOND_FACTOR, honoured only under
    TESTING)."""
    if user.role == Role.operator:
        relaxed = current_app.testing and current_app.config.get("TESTING_OPERATORS_WITHOUT_SECOND_FACTOR")
        return not relaxed
    return any(rule(user) for rule in _RULES)


def _fernet() -> MultiFernet:
    """The cipher of stored secrets: the current SECRET_KEY's key first, then the fallbacks' (decrypt only)."""
    keys = [current_app.config["SECRET_KEY"], *(current_app.config.get("SECRET_KEY_FALLBACKS") or [])]
    return MultiFernet([Fernet(base64.urlsafe_b64encode(
        HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(str(key).encode())))
        for key in keys])


def new_secret() -> str:
    """A fresh TOTP secret (base32, 160 bits)."""
    return pyotp.random_base32(32)


def seal(secret: str) -> str:
    """A secret as it is stored (and carried in the enrolment's cookie): encrypted."""
    return _fernet().encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str | None:
    """The secret of a sealed value, or None when it cannot be read (tampered with, or an unknown key)."""
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        return None


def provisioning_uri(*, user: User, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=current_app.config["TWO_FACTOR_ISSUER"])


def grouped(secret: str) -> list[str]:
    """The secret in groups of four, for typing into an app by hand."""
    return [secret[i:i + 4] for i in range(0, len(secret), 4)]


def matching_step(secret: str, code: object, now: datetime) -> int | None:
    """The time step (±1 around now) whose code this is, or None."""
    text = re.sub(r"\s", "", code) if isinstance(code, str) else ""
    if not _TOTP.match(text):
        return None
    totp, current = pyotp.TOTP(secret), int(now.timestamp()) // STEP_SECONDS
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), text):
            return step
    return None


def _take_step(user: User, step: int) -> bool:
    """Record that the account used this step's code; False when it (or a later one) was used already."""
    statement = (update(User).where(User.id == user.id, or_(User.totp_last_step.is_(None),
                                                            User.totp_last_step < step))
                 .values(totp_last_step=step))
    taken = db.session.execute(statement.execution_options(synchronize_session="fetch")).rowcount == 1
    if taken:
        sessions.keep_after_rollback(statement)
    return taken


def _normal_recovery(code: str) -> str:
    """A recovery code as stored: lower case, without spaces or dashes."""
    return re.sub(r"[\s-]", "", code).lower()


def _recovery_hash(salt: str, code: str) -> str:
    """The stored form of a recovery code."""
    return hmac.new(salt.encode(), _normal_recovery(code).encode(), hashlib.sha256).hexdigest()


def new_recovery_codes(*, user: User, now: datetime | None = None) -> list[str]:
    """Ten fresh recovery codes for the account (the old ones stop working); returned once, kept hashed."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        salt = secrets.token_hex(16)
        db.session.add(RecoveryCode(user_id=user.id, salt=salt, code_hash=_recovery_hash(salt, raw),
                                    created_at=now or timeutil.utcnow()))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    db.session.flush()
    return codes


def unused_recovery_codes(user: User) -> int:
    """How many recovery codes the account has left."""
    return db.session.scalar(select(func.count()).select_from(RecoveryCode)
                             .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0


def _spend_recovery_code(user: User, code: str, now: datetime) -> bool:
    """Spend one of the account's unused recovery codes; False when the code is none of them."""
    if not 8 <= len(_normal_recovery(code)) <= 12:
        return False
    rows = db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id,
                                                         RecoveryCode.used_at.is_(None))).all()
    match = next((row for row in rows if hmac.compare_digest(row.code_hash, _recovery_hash(row.salt, code))), None)
    if match is None:
        return False
    statement = (update(RecoveryCode).where(RecoveryCode.id == match.id, RecoveryCode.used_at.is_(None))
                 .values(used_at=now))
    spent = db.session.execute(statement.execution_options(synchronize_session="fetch")).rowcount == 1
    if spent:
        sessions.keep_after_rollback(statement)
    return spent


def check_code(*, user: User, code: object, now: datetime | None = None) -> str:
    """Accept the app's current code or an unused recovery code of the account, once; "totp" or "recovery".
    WrongCode otherwise (a code used before included)."""
    now = now or timeutil.utcnow()
    secret = unseal(user.totp_secret) if user.totp_secret else None
    if secret is None or not isinstance(code, str):
        raise WrongCode(field="code")
    step = matching_step(secret, code, now)
    if step is not None:
        if _take_step(user, step):
            return "totp"
        raise WrongCode(field="code")
    if _spend_recovery_code(user, code, now):
        return "recovery"
    raise WrongCode(field="code")


def enrol(*, user: User, secret: str, code: object, keep: UserSession | None,
          now: datetime | None = None) -> list[str]:
    """Give the account this second factor, proved by a current code from the app; every other session of the
    account ends. The ten recovery codes, to show once."""
    now = now or timeutil.utcnow()
    step = matching_step(secret, code, now)
    if step is None:
        raise WrongCode(field="code")
    user.totp_secret, user.totp_last_step, user.second_factor_since = seal(secret), step, now
    codes = new_recovery_codes(user=user, now=now)
    sessions.end_others(user=user, keep=keep, reason="second_factor", now=now)
    record_audit(actor=user, action="account.second_factor_on", subject=f"user:{user.id}")
    db.session.flush()
    return codes


def accounts_matching(text: str, limit: int = 20) -> list[User]:
    """Portal accounts whose e-mail starts with `text` (the unique index on e-mail: bounded by `limit`)."""
    pattern = text.replace("\\", "").replace("%", "").replace("_", "\\_") + "%"
    return list(db.session.scalars(select(User).where(User.email.like(pattern, escape="\\"))
                                   .order_by(User.email).limit(limit)))


def _clear(user: User) -> None:
    """Take the second factor off an account: secret, step and recovery codes."""
    user.totp_secret = user.totp_last_step = user.second_factor_since = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def turn_off(*, user: User, keep: UserSession | None, now: datetime | None = None) -> None:
    """The account gives up its optional second factor (refused where it is required); other sessions end."""
    if required_for(user):
        raise SecondFactorRequired()
    _clear(user)
    sessions.end_others(user=user, keep=keep, reason="second_factor", now=now)
    record_audit(actor=user, action="account.second_factor_off", subject=f"user:{user.id}")
    db.session.flush()


def reset(*, actor: User, user: User, reason: str = "", now: datetime | None = None) -> None:
    """An operator takes another account's second factor away (a lost phone): every session of that account ends,
    and it enrols again at its next sign-in where one is required. Audited."""
    if actor.role != Role.operator:
        raise Forbidden()
    if actor.id == user.id:
        raise ResetOwnSecondFactor()
    _clear(user)
    sessions.end_others(user=user, keep=None, reason="second_factor_reset", now=now)
    record_audit(actor=actor, action="account.second_factor_reset", subject=f"user:{user.id}",
                 reason=reason.strip()[:500])
    db.session.flush()
