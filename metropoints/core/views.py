"""Core pages: home, portal login and logout, language switch."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import text

from metropoints.core.db import db
from metropoints.core.errors import DomainError
from metropoints.core.extensions import limiter
from metropoints.core.forms import LoginForm
from metropoints.core.operations import authenticate_user

bp = Blueprint("core", __name__)


@bp.get("/")
def index():
    """The platform's front page."""
    return render_template("core/index.html")


def _login_limit() -> str:
    """The login rate limit from the configuration."""
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    """Log a portal user in; a wrong password is a form error, never a hint which part was wrong."""
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate_user(email=form.email.data, password=form.password.data)
        except DomainError:
            form.password.errors.append(_("Wrong e-mail or password."))
        else:
            login_user(user)
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("core.index"))
    return render_template("core/login.html", form=form), 200 if request.method == "GET" or not form.errors else 422


@bp.post("/logout")
@login_required
def logout():
    """End the portal session."""
    logout_user()
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
