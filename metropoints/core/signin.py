"""What portal sign-in shows and does: each role's home page, why an account whose password matched cannot sign in,
the second step after the password, the session's start and end, and the check asked again before money or points
move (`step_up_required`).

Core knows no domain package, so the packages that own those pages and accounts register them here (as they add
their navigation entries in core.portal): `set_home(Role.cashier, "counter.page")`, `explain_inactive(function)`.

After the password, an account with a second factor is half signed in: the (signed) cookie names it and the time,
for SIGNIN_PENDING_SECONDS, and nothing but the code page reads that; an account that must have a second factor and
has none is sent to enrolment in the same state. Only then does the session start: the cookie is emptied and given
a new session id (core.sessions), so an id known before the sign-in is worth nothing after it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import abort, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from limits import parse
from werkzeug.security import check_password_hash
from werkzeug.wrappers import Response

from metropoints.core import sessions, timeutil, twofactor
from metropoints.core.accounts import record_login
from metropoints.core.db import db
from metropoints.core.errors import DomainError
from metropoints.core.extensions import limiter
from metropoints.core.models import Role, User, UserSession
from metropoints.core.twofactor_forms import StepUpForm

_HOMES: dict[Role, str] = {}
_EXPLAINERS: list[Callable[[User], Any]] = []
PENDING_KEY = "_signin_pending"
STEP_UP_PREFIX = "step_up"
WRONG_CODE = _l("That code is not valid. Type the current code from your app, or an unused recovery code.")
WRONG_PASSWORD = _l("That is not your current password.")


def set_home(role: Role, endpoint: str) -> None:
    """The page a user of `role` lands on after signing in (without a `next` page to go back to)."""
    _HOMES[role] = endpoint


def home_url(user: User) -> str:
    """The signed-in user's home page; the front page for a role nobody registered."""
    return url_for(_HOMES.get(user.role, "core.index"))


def explain_inactive(explainer: Callable[[User], Any]) -> Callable[[User], Any]:
    """Register a function that says (a translated text) why an inactive account may not sign in, or None when it
    does not know; usable as a decorator."""
    if explainer not in _EXPLAINERS:
        _EXPLAINERS.append(explainer)
    return explainer


def why_inactive(user: User) -> Any:
    """The first registered explanation for this inactive account, or None."""
    for explainer in _EXPLAINERS:
        reason = explainer(user)
        if reason:
            return reason
    return None


def safe_next(target: str | None) -> str:
    """A `next` page on this site ("/..."), or "" for anything that could lead elsewhere."""
    target = target or ""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return ""


def after_password(user: User, *, next_url: str | None) -> Response:
    """The password matched: ask for the code, send to enrolment, or sign in, as the account requires."""
    if user.has_second_factor:
        _pend(user, next_url)
        return redirect(url_for("two_factor.code"))
    if twofactor.required_for(user):
        _pend(user, next_url)
        return redirect(url_for("two_factor.enrol"))
    complete_signin(user)
    return redirect(safe_next(next_url) or home_url(user))


def _pend(user: User, next_url: str | None) -> None:
    """Half sign the browser in: only the code or enrolment page reads this."""
    session.pop("_user_id", None)
    session[PENDING_KEY] = {"u": user.id, "at": timeutil.utcnow().timestamp(), "n": safe_next(next_url)}


def pending_user(now: datetime | None = None) -> User | None:
    """The account whose password this browser typed within SIGNIN_PENDING_SECONDS, still active; or None."""
    data = session.get(PENDING_KEY)
    if not isinstance(data, dict) or type(data.get("u")) is not int or not isinstance(data.get("at"), float):
        return None
    age = (now or timeutil.utcnow()).timestamp() - data["at"]
    if not 0 <= age < int(current_app.config["SIGNIN_PENDING_SECONDS"]) or not 0 < data["u"] < 2**31:
        return None
    user = db.session.get(User, data["u"])
    return user if user is not None and user.active else None


def pending_next(user: User) -> str:
    """Where a half-signed-in browser goes once signed in."""
    data = session.get(PENDING_KEY)
    return (safe_next(data.get("n")) if isinstance(data, dict) else "") or home_url(user)


def complete_signin(user: User) -> UserSession:
    """Start the account's session in this browser: the cookie emptied (the language kept) and a new session id."""
    old = session.get(sessions.COOKIE_KEY)
    if isinstance(old, str):
        sessions.end_by_id(old, reason="signed_in_again")
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language
    raw, record = sessions.begin(user=user, address=request.remote_addr, user_agent=request.user_agent.string)
    session[sessions.COOKIE_KEY] = raw
    login_user(user)
    g._user_session = record
    record_login(user=user, address=request.remote_addr, user_agent=request.user_agent.string)
    return record


def sign_out() -> None:
    """End this browser's session, on the server and in the cookie (the language kept)."""
    record = current_session()
    if record is not None:
        sessions.end(record=record, reason="signed_out")
    logout_user()
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def current_session() -> UserSession | None:
    """The signed-in browser's session row (loaded with the account by the user loader)."""
    return g.get("_user_session") if current_user.is_authenticated else None


def count_attempt(user: User, what: str) -> None:
    """A code (or a password asked again) typed for the account counts against its login limit (429 past it), so
    six digits cannot be guessed by trying them all."""
    item = parse(current_app.config["LOGIN_RATE_LIMIT"])
    if not limiter.limiter.hit(item, what, str(user.id)):
        abort(429)


def check_api_code(*, user: User, code: str | None, now: datetime | None = None) -> str | None:
    """The second factor of a sign-in through the API (the POS's staff token), after the password matched: the same
    check as the code page (`twofactor.check_code`: each code once, a recovery code spent) and the same limit
    (`count_attempt`, "sign-in-code"). None for an account without a second factor that need not have one (its
    `code` ignored), "totp" or "recovery" when the code passed; NotEnrolled for an account that must have one and
    has none, CodeNeeded when the code is missing, wrong or used before."""
    if not user.has_second_factor:
        if twofactor.required_for(user):
            raise twofactor.NotEnrolled()
        return None
    if not code:
        raise twofactor.CodeNeeded()
    count_attempt(user, "sign-in-code")
    try:
        return twofactor.check_code(user=user, code=code, now=now)
    except twofactor.WrongCode:
        raise twofactor.CodeNeeded("That code is not valid: send the current 6-digit code from the authenticator "
                                   "app, or an unused recovery code; each code is taken once.") from None


def verify_again(user: User, record: UserSession, form: StepUpForm, now: datetime | None = None) -> bool:
    """Check the account's factor again (the code, or the password without a second factor); True and the session
    marked as checked when it passes, a form error otherwise."""
    count_attempt(user, "step-up")
    if user.has_second_factor:
        try:
            twofactor.check_code(user=user, code=form.code.data or "", now=now)
        except DomainError:
            form.code.errors = [*form.code.errors, str(WRONG_CODE)]
            return False
    elif not check_password_hash(user.password_hash, form.password.data or ""):
        form.password.errors = [*form.password.errors, str(WRONG_PASSWORD)]
        return False
    sessions.mark_verified(record, now)
    return True


def _replayed_fields() -> list[tuple[str, str]]:
    """The form that was posted, to post again after the check (not its CSRF token nor the check's own fields)."""
    return [(name, value) for name, value in request.form.items(multi=True)
            if name != "csrf_token" and not name.startswith(STEP_UP_PREFIX + "-")]


def step_up_required(view: Callable | None = None, *, when: Callable[[], bool] | None = None) -> Callable:
    """A view that moves money or points: when the session last proved its factors more than STEP_UP_SECONDS ago,
    a posted form is shown again as a check page that asks for the code (or the password, for an account without a
    second factor) and posts the same fields once more with it, so nothing typed is lost; a page opened (GET) goes
    to the check page and back. `when` narrows it (e.g. only one decision of a form). Put it under `role_required`."""

    def decorator(inner: Callable) -> Callable:
        @functools.wraps(inner)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            asks = when() if when is not None else request.method not in ("GET", "HEAD")
            record = current_session()
            if not asks or sessions.is_fresh(record):
                return inner(*args, **kwargs)
            if record is None:
                abort(401)
            if request.method in ("GET", "HEAD"):
                return redirect(url_for("two_factor.step_up", next=request.full_path.rstrip("?")))
            form = StepUpForm(prefix=STEP_UP_PREFIX)
            if f"{STEP_UP_PREFIX}-check" in request.form:
                if verify_again(current_user._get_current_object(), record, form):
                    return inner(*args, **kwargs)
                status = 422
            else:
                form = StepUpForm(prefix=STEP_UP_PREFIX, formdata=None)
                status = 200
            return render_template("core/step_up.html", form=form, action=request.full_path.rstrip("?"),
                                   fields=_replayed_fields(), replay=True), status

        return wrapped

    return decorator(view) if view is not None else decorator

