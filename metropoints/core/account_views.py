"""Account pages for every portal role: forgotten password (by e-mail), password and profile changes, last sign-ins,
the account's live sessions (one ended, or all but this one). The second factor's pages are core.twofactor_views."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from metropoints.core import accounts, sessions, twofactor
from metropoints.core.errors import DomainError
from metropoints.core.extensions import limiter
from metropoints.core.forms import ActionForm, ChangePasswordForm, ForgotPasswordForm, NewPasswordForm, ProfileForm
from metropoints.core.portal import form_page, portal_user, put_on_form, register_error_messages
from metropoints.core.signin import current_session

bp = Blueprint("account", __name__)
register_error_messages(bp.name, {
    "wrong_password": _l("That is not your current password."),
    "invalid_reset_link": _l("This password reset link is not valid (any more). Ask for a new one."),
})


def _forgot_limit() -> str:
    """How often one address may ask for reset links (each sends a mail)."""
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_forgot_limit, methods=["POST"])
def forgot_password():
    """Ask for a reset link; the answer is the same whether or not the address has an account."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        accounts.request_password_reset(email=form.email.data)
        flash(_("If an account uses that address, a link to set a new password is on its way. It works once, "
                "for %(minutes)d minutes.", minutes=int(current_app.config["PASSWORD_RESET_SECONDS"]) // 60))
        return redirect(url_for("core.login"))
    return form_page("core/forgot_password.html", form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    """Set a new password through the link of a reset mail; an expired or used link says so."""
    try:
        accounts.user_for_reset(token)
    except accounts.InvalidResetLink:
        flash(_("This password reset link is not valid (any more). Ask for a new one."))
        return redirect(url_for("account.forgot_password"))
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.reset_password(token=token, password=form.password.data)
        except DomainError as error:
            put_on_form(form, error)
        else:
            flash(_("Your password is set. Log in with it."))
            return redirect(url_for("core.login"))
    return form_page("core/reset_password.html", form)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """The signed-in account: its name and mail language, a password change, and its last sign-ins."""
    user = portal_user()
    profile = ProfileForm(prefix="profile", obj=user if request.method == "GET" else None)
    password = ChangePasswordForm(prefix="password")
    if request.method == "POST" and "profile-display_name" in request.form and profile.validate():
        try:
            accounts.update_profile(user=user, display_name=profile.display_name.data, locale=profile.locale.data)
        except DomainError as error:
            put_on_form(profile, error)
        else:
            flash(_("Saved."))
            return redirect(url_for("account.account"))
    elif request.method == "POST" and "password-current_password" in request.form and password.validate():
        try:
            accounts.change_password(user=user, current=password.current_password.data, new=password.password.data,
                                     keep=current_session())
        except DomainError as error:
            put_on_form(password, error, {"password": "password", "current_password": "current_password"})
        else:
            flash(_("Your password is changed."))
            return redirect(url_for("account.account"))
    failed = request.method == "POST" and any(f.errors for form in (profile, password) for f in form)
    return render_template("core/account.html", profile=profile, password=password,
                           logins=accounts.recent_logins(current_user), sessions=sessions.live_sessions(user),
                           this_session=current_session(), device_of=sessions.device_of, action_form=ActionForm(),
                           required=twofactor.required_for(user),
                           recovery_left=twofactor.unused_recovery_codes(user) if user.has_second_factor else 0,
                           ), 422 if failed else 200


@bp.post("/account/sessions/<id:session_id>/end")
@login_required
def end_session(session_id: int):
    """End one of the account's other sessions (a browser left signed in elsewhere)."""
    if ActionForm().validate_on_submit():
        sessions.end_one(user=portal_user(), session_id=session_id)
        flash(_("That session is signed out."))
    return redirect(url_for("account.account"))


@bp.post("/account/sessions/end-others")
@login_required
def end_other_sessions():
    """Sign out everywhere else: every session of the account but this one ends."""
    if ActionForm().validate_on_submit():
        count = sessions.end_others(user=portal_user(), keep=current_session(), reason="ended_elsewhere")
        flash(_("Signed out everywhere else (%(count)d sessions).", count=count))
    return redirect(url_for("account.account"))
