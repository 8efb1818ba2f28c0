"""Extension objects, created once and bound to the app in the factory."""

from __future__ import annotations

from flask import current_app, g, request, session
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_wtf import CSRFProtect

from metropoints.core import sessions
from metropoints.core.db import MAX_ID

babel = Babel()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
login_manager = LoginManager()
mail = Mail()  # settings are read at each send (core.mail), so they can change without a restart of the factory
login_manager.login_view = "core.login"
# Flask-Limiter marks each view its `limit` decorator wraps with this attribute (functools.wraps carries it through
# the decorators above).
LIMITED_VIEW_MARK = "__wrapper-limiter-instance"


@limiter.request_filter
def _view_without_limits() -> bool:
    """True (skip the limiter) for views without a `limiter.limit` of their own. The app sets no default or
    blueprint-wide limits, only the login views' own, so every other request — a flash sale's, a kiosk's poll —
    skips the limiter's per-request bookkeeping (about 6% of a redemption's CPU). Adding default or blueprint
    limits means removing this filter."""
    return not view_is_limited()


def view_is_limited() -> bool:
    """True when the request's view carries a `limiter.limit` of its own (core.lean runs the limiter's other hooks
    only then)."""
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, LIMITED_VIEW_MARK, None) == limiter  # a weak proxy of the limiter: compare by ==


@login_manager.user_loader
def load_user(user_id: str):
    """The portal account in the session cookie, with its live session row, in one query (core.sessions); None
    for a session that ended or timed out, and for a cookie without a session id (so a remember-me cookie alone
    signs nobody in)."""
    g._user_session = None
    raw = session.get(sessions.COOKIE_KEY)
    if not user_id.isdigit() or not isinstance(raw, str) or not 0 < int(user_id) <= MAX_ID:
        return None
    found = sessions.load(user_id=int(user_id), raw=raw)
    if found is None:
        return None
    user, g._user_session = found
    return user


def select_locale() -> str:
    """Chinese by default; English when chosen (kept in the session) or preferred by the browser."""
    languages = current_app.config["LANGUAGES"]
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]
