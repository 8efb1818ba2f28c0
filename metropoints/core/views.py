"""Core pages: home, portal login and logout, language switch, the favicon."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import text
from werkzeug.wrappers import Response

from metropoints.core.db import db
from metropoints.core.errors import DomainError
from metropoints.core.extensions import limiter
from metropoints.core.forms import LoginForm
from metropoints.core.operations import InactiveAccount, authenticate_user
from metropoints.core.signin import after_password, sign_out, why_inactive

bp = Blueprint("core", __name__)

# What the front page says about the accrual rules in force (points_per_km, daily_cap, co2e_g_per_km), given by the
# app factory from the accrual package: core imports no package of ours.
_rules_in_force: list[Callable[[], Mapping[str, object]]] = []


def show_rules_on_front_page(provider: Callable[[], Mapping[str, object]]) -> None:
    """Let the front page quote the rules in force, read through `provider` at each view."""
    _rules_in_force[:] = [provider]


@bp.get("/")
def index() -> str:
    """The platform's front page: what riders earn, what merchants fund and pay, the CO2e factor; the way in."""
    rules = _rules_in_force[0]() if _rules_in_force else None
    return render_template("core/index.html", rules=rules)


# The icon is served from memory: browsers ask for it with every first page and often drop the request half-way, and
# an answer with no open file behind it leaves nothing to close.
_FAVICON = (Path(__file__).resolve().parent.parent / "static" / "favicon.svg").read_bytes()


@bp.get("/favicon.svg")
@bp.get("/favicon.ico", endpoint="favicon_ico")  # the address browsers ask for by default
def favicon() -> Response:
    """The site's icon (SVG), cacheable for a day."""
    response = Response(_FAVICON, mimetype="image/svg+xml")
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response


def _login_limit() -> str:
    """The failed-login limit per account, from the configuration."""
    return current_app.config["LOGIN_RATE_LIMIT"]


def _address_limit() -> str:
    """The failed-login limit per client address, from the configuration."""
    return current_app.config["LOGIN_ADDRESS_RATE_LIMIT"]


def _account_key() -> str:
    """The account a login attempt is for: the e-mail typed, as the login compares it."""
    return "account:" + (request.form.get("email") or "").strip().lower()[:254]


def _failed(response) -> bool:
    """Only refused attempts count against the limits (a successful login redirects)."""
    return response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_account_key, deduct_when=_failed)
@limiter.limit(_address_limit, methods=["POST"], deduct_when=_failed)
def login():
    """Log a portal user in and take them to their role's home; a wrong password is a form error, never a hint which
    part was wrong. An account whose password matched but that may not sign in is told why (an application still
    under review, say). Failed attempts are limited per account and per address, so one merchant's bad tries never
    lock out another. An account with a second factor is asked for its code next (core.signin)."""
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate_user(email=form.email.data, password=form.password.data)
        except InactiveAccount as refusal:
            form.email.errors.append(why_inactive(refusal.user) or _("This account cannot sign in."))
        except DomainError:
            form.password.errors.append(_("Wrong e-mail or password."))
        else:
            return after_password(user, next_url=request.args.get("next", ""))
    return render_template("core/login.html", form=form), 200 if request.method == "GET" or not form.errors else 422


@bp.post("/logout")
@login_required
def logout():
    """End the portal session."""
    sign_out()
    return redirect(url_for("core.index"))


@bp.get("/lang/<code>")
def set_language(code: str):
    """Switch the pages' language (zh or en) and go back."""
    if code not in current_app.config["LANGUAGES"]:
        flash(_("Unknown language."))
    else:
        session["lang"] = code
    target = request.referrer or url_for("core.index")
    return redirect(target if target.startswith(request.host_url) else url_for("core.index"))


@bp.get("/healthz")
def healthz():
    """For the load balancer: the app answers and reaches its database."""
    db.session.execute(text("SELECT 1"))
    return {"status": "ok", "user": current_user.is_authenticated}
