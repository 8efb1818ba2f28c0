"""Identity rules: riders, portal users, bearer tokens and the audit log. Functions flush, never commit."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from metropoints.core.db import db
from metropoints.core.errors import Conflict, Forbidden, InvalidInput, InvalidToken, NotFound, Unauthorized
from metropoints.core.models import ApiToken, AuditEntry, Rider, Role, TokenKind, User
from metropoints.core.rollups import count_registration
from metropoints.core.timeutil import utcnow
from metropoints.core.token_cache import forget_token

PHONE_RE = re.compile(r"^\+?[0-9]{6,15}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 200
# Compared against when the phone is unknown, so a wrong phone costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class PhoneTaken(Conflict):
    """A rider with this phone exists."""

    code = "phone_taken"
    default_message = "This phone number is already registered."


class EmailTaken(Conflict):
    """A portal account with this e-mail exists."""

    code = "email_taken"
    default_message = "This e-mail address already has an account."


class BadCredentials(Unauthorized):
    """Phone/e-mail and password do not match."""

    code = "bad_credentials"
    default_message = "Wrong phone number or password."


def hash_token(raw: str) -> str:
    """The stored form of a bearer token."""
    return hashlib.sha256(raw.encode()).hexdigest()


def check_password(password: object) -> str:
    """A password long enough to be worth hashing."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"The password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters.", field="password")
    return password


def register_rider(*, phone: object, password: object, display_name: object = None) -> Rider:
    """Create a rider account; the phone is the login and must be unique."""
    if not isinstance(phone, str) or not PHONE_RE.match(phone.strip()):
        raise InvalidInput("The phone number must have 6 to 15 digits.", field="phone")
    phone = phone.strip()
    password = check_password(password)
    if display_name is not None and (not isinstance(display_name, str) or not 0 < len(display_name.strip()) <= 64):
        raise InvalidInput("The display name must have 1 to 64 characters.", field="display_name")
    if db.session.scalar(select(Rider.id).where(Rider.phone == phone)) is not None:
        raise PhoneTaken()
    rider = Rider(phone=phone, password_hash=generate_password_hash(password),
                  display_name=(display_name or f"rider-{phone[-4:]}").strip(), points_balance=0)
    db.session.add(rider)
    db.session.flush()
    count_registration(rider.created_at)
    return rider


def authenticate_rider(*, phone: object, password: object) -> Rider:
    """The rider whose phone and password match; BadCredentials otherwise."""
    rider = db.session.scalar(select(Rider).where(Rider.phone == phone.strip())) if isinstance(phone, str) else None
    if rider is None or not isinstance(password, str):
        check_password_hash(_DUMMY_HASH, "x")
        raise BadCredentials()
    if not check_password_hash(rider.password_hash, password):
        raise BadCredentials()
    return rider


def normalise_email(raw: object) -> str:
    """The one rule for portal e-mail addresses, the login form's (WTForms' Email uses the same email-validator,
    without a DNS lookup): an address any form accepts, lower-cased; InvalidInput for anything else, so no account
    is ever made with an address its owner could not log in with."""
    text = raw.strip() if isinstance(raw, str) else ""
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise InvalidInput("That is not an e-mail address.", field="email") from None


class InactiveAccount(BadCredentials):
    """The password matched an account that may not sign in (an application under review, a deactivated
    cashier). To the API it is the same refusal as a wrong password; the portal's login page, which has just seen
    the right password, may say why (core.signin)."""

    def __init__(self, user: User) -> None:
        """Keep the account, for the login page only (never serialized: it is not one of the error's fields)."""
        super().__init__("Wrong e-mail or password.")
        self.user = user


def create_user(*, email: str, password: str, role: Role, display_name: str = "") -> User:
    """Create a portal account (operator, merchant owner or cashier)."""
    email = normalise_email(email)
    password = check_password(password)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken()
    user = User(email=email, password_hash=generate_password_hash(password), role=role,
                display_name=display_name or email.split("@")[0], active=True)
    try:
        with db.session.begin_nested():  # the unique index decides between two sign-ups racing for one address
            db.session.add(user)
    except IntegrityError:
        raise EmailTaken() from None
    return user


def authenticate_user(*, email: str, password: str) -> User:
    """The active portal account whose e-mail and password match; BadCredentials otherwise."""
    user = db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None:
        check_password_hash(_DUMMY_HASH, "x")
        raise BadCredentials("Wrong e-mail or password.")
    if not check_password_hash(user.password_hash, password or ""):
        raise BadCredentials("Wrong e-mail or password.")
    if not user.active:
        raise InactiveAccount(user)
    return user


def issue_token(*, kind: TokenKind, subject_id: int, ttl: timedelta | None = None,
                label: str = "") -> tuple[str, ApiToken]:
    """A new bearer token; the raw value is returned once and only its hash is kept."""
    raw = f"{kind.value[:2]}_{secrets.token_urlsafe(32)}"
    token = ApiToken(token_hash=hash_token(raw), kind=kind, subject_id=subject_id, label=label,
                     expires_at=utcnow() + ttl if ttl is not None else None)
    db.session.add(token)
    db.session.flush()
    return raw, token


def resolve_token(raw: str, *, at: datetime | None = None) -> ApiToken | None:
    """The live token for a raw bearer value, or None (unknown, expired or revoked); a use is recorded
    (`touch_token`)."""
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    now = at or utcnow()
    if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
        return None
    touch_token(token_id=token.id, last_used_at=token.last_used_at, now=now)
    return token


# A token's last use is kept to the minute: a request whose token was used less than this long ago writes nothing.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)
MAX_REVOKE_REASON = 500


class TokenAlreadyRevoked(Conflict):
    """The token was revoked before (by its holder, an operator or the command line)."""

    code = "token_revoked"
    default_message = "This token was already revoked."


def token_use_is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    """True when a token's recorded last use is worth writing again (never used, or over a minute ago)."""
    return last_used_at is None or last_used_at <= now - TOKEN_USE_RESOLUTION


def touch_token(*, token_id: int, last_used_at: datetime | None, now: datetime, written: bool = False) -> None:
    """Record a use of a live token, at most once per TOKEN_USE_RESOLUTION.

    `last_used_at` is the value read with the token, so a fresh one costs nothing. A stale one costs one guarded
    UPDATE in the unit of work (none when the caller's probe has `written` it already: core.api folds it into its
    one statement on PostgreSQL); it skips a row another transaction is writing (SKIP LOCKED, PostgreSQL), so two
    requests with one token never wait on each other for it. It is part of the unit of work: a request refused with
    a 4xx rolls it back with everything else, so the time recorded is that of the last call answered without error
    (writing it apart would cost the refusals, a flash sale's sold-out replies among them, a statement each).
    """
    if token_use_is_stale(last_used_at, now) and not written:
        _write_use(token_id, now)


def _write_use(token_id: int, now: datetime) -> None:
    """The guarded write of a token's last use: only when the stored value is still stale."""
    stale = (select(ApiToken.id)
             .where(ApiToken.id == token_id,
                    or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - TOKEN_USE_RESOLUTION))
             .with_for_update(skip_locked=True))
    db.session.execute(update(ApiToken).where(ApiToken.id.in_(stale)).values(last_used_at=now)
                       .execution_options(synchronize_session=False))


def revoke_token(*, token_id: int, actor: User | None, reason: str, actor_label: str = "",
                 now: datetime | None = None) -> ApiToken:
    """Revoke a token from the next request on (core.api's probe reads `revoked_at`), with who did it and why,
    audited. One guarded UPDATE: of two revocations racing, one wins and the other is TokenAlreadyRevoked."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the token is revoked.", field="reason")
    if len(reason) > MAX_REVOKE_REASON:
        raise InvalidInput(f"The reason has at most {MAX_REVOKE_REASON} characters.", field="reason")
    by = actor_label or (actor.email if actor else "cli")
    token = _revoke(token_id, by=by, reason=reason, now=now or utcnow())
    record_audit(actor=actor, actor_label=by, action="token.revoke", subject=f"token:{token.id}", reason=reason)
    return token


MAX_TOKEN_LABEL = ApiToken.__table__.c.label.type.length
LABELLED_KINDS = (TokenKind.partner, TokenKind.kiosk, TokenKind.staff)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class LabelNotEditable(Forbidden):
    """A rider token's label is the platform's (how it was made); only partner, kiosk and staff tokens are named."""

    code = "label_not_editable"
    default_message = "Only partner, kiosk and staff tokens can be given a label."


class EmptyTokenLabel(InvalidInput):
    """A token label with nothing in it."""

    code = "label_empty"
    default_message = "Give the token a label."


class TokenLabelTooLong(InvalidInput):
    """A token label longer than its column."""

    code = "label_too_long"
    default_message = "The label is too long."


class TokenLabelControlCharacters(InvalidInput):
    """A token label with control characters (line breaks, tabs, escapes): it is shown in one table cell."""

    code = "label_control_characters"
    default_message = "The label may not contain control characters such as line breaks or tabs."


def check_token_label(label: object) -> str:
    """A token label as stored: stripped, 1 to MAX_TOKEN_LABEL characters, no control characters; the typed error
    otherwise."""
    text = label.strip() if isinstance(label, str) else ""
    if not text:
        raise EmptyTokenLabel(field="label")
    if len(text) > MAX_TOKEN_LABEL:
        raise TokenLabelTooLong(f"The label has at most {MAX_TOKEN_LABEL} characters.", field="label",
                                max_length=MAX_TOKEN_LABEL)
    if _CONTROL.search(text):
        raise TokenLabelControlCharacters(field="label")
    return text


def set_token_label(*, token_id: int, actor: User | None, label: object, actor_label: str = "") -> ApiToken:
    """Name a partner's, kiosk's or staff token (which device or key it is), audited with the old and the new label.
    NotFound for no such token, LabelNotEditable for a rider token, InvalidInput for a bad label; the same label
    again changes and records nothing."""
    text = check_token_label(label)
    token = db.session.get(ApiToken, token_id, with_for_update=True)
    if token is None:
        raise NotFound("No such token.")
    if token.kind not in LABELLED_KINDS:
        raise LabelNotEditable()
    if token.label != text:
        old, token.label = token.label, text
        record_audit(actor=actor, actor_label=actor_label, action="token.label", subject=f"token:{token.id}",
                     reason=f"{old} → {text}")
        db.session.flush()
    return token


def log_out_token(*, raw: str, kind: TokenKind, now: datetime | None = None) -> bool:
    """The holder's own sign-out (a rider's `POST /auth/logout`): revoke the token it presents. A repeat, or a
    token already expired, changes nothing (False); InvalidToken for a value that is no token of ours, Forbidden
    for another kind's. True when this call revoked it."""
    now = now or utcnow()
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    if token is None:
        raise InvalidToken()
    if token.kind != kind:
        raise Forbidden(f"This needs a {kind.value} token.")
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return False
    try:
        _revoke(token.id, by="holder", reason="logout", now=now)
    except TokenAlreadyRevoked:  # a concurrent logout with the same token won
        return False
    return True


def _revoke(token_id: int, *, by: str, reason: str, now: datetime) -> ApiToken:
    """Set `revoked_at` where it is still empty; NotFound / TokenAlreadyRevoked otherwise."""
    revoked = db.session.execute(
        update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=by[:120], revoke_reason=reason)
        .returning(ApiToken.id).execution_options(synchronize_session=False)).scalar()
    if revoked is not None:
        forget_token(db.session, token_id)  # the hot paths' cache (core.token_cache) refuses it from now on
    token = db.session.get(ApiToken, token_id, populate_existing=True)
    if token is None:
        raise NotFound("No such token.")
    if revoked is None:
        raise TokenAlreadyRevoked(revoked_at=token.revoked_at)
    return token


def record_audit(*, actor: User | None, action: str, subject: str, reason: str = "", actor_label: str = "") -> None:
    """Write who decided what, about what, and why."""
    db.session.add(AuditEntry(actor_id=actor.id if actor else None,
                              actor_label=actor_label or (actor.email if actor else "cli"),
                              action=action, subject=subject, reason=reason))
