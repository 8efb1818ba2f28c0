"""The second factor's pages: the code after the password, enrolment (QR code, secret, first code, recovery codes),
new recovery codes, turning an optional second factor off, the check asked again (step-up) for a page, and the back
office's reset of another account's second factor."""

from __future__ import annotations

import segno
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.wrappers import Response

from metropoints.core import sessions, twofactor
from metropoints.core.db import db
from metropoints.core.errors import DomainError, NotFound
from metropoints.core.models import Role, User
from metropoints.core.portal import (
    add_nav,
    form_page,
    message_for,
    portal_user,
    put_on_form,
    register_error_messages,
    role_required,
)
from metropoints.core.signin import (
    STEP_UP_PREFIX,
    complete_signin,
    count_attempt,
    current_session,
    home_url,
    pending_next,
    pending_user,
    safe_next,
    step_up_required,
    verify_again,
)
from metropoints.core.twofactor_forms import CodeForm, ResetSecondFactorForm, StepUpForm

bp = Blueprint("two_factor", __name__)
ENROL_KEY = "_enrol_secret"
add_nav("two_factor.accounts", _l("Accounts"), Role.operator, order=90)
register_error_messages(bp.name, {
    "wrong_code": _l("That code is not valid. Type the current code from your app, or an unused recovery code."),
    "second_factor_required": _l("This account must keep a second factor."),
    "reset_own_second_factor": _l("Reset another account's second factor; yours is changed on your account page."),
    "not_found": _l("Not found."),
})


@bp.route("/login/code", methods=["GET", "POST"])
def code():
    """The sign-in's second step: the code from the app, or a recovery code (each used once)."""
    if current_user.is_authenticated:
        return redirect(home_url(current_user))
    user = pending_user()
    if user is None or not user.has_second_factor:
        flash(_("Please log in again."))
        return redirect(url_for("core.login"))
    form = CodeForm()
    if form.validate_on_submit():
        count_attempt(user, "sign-in-code")
        try:
            kind = twofactor.check_code(user=user, code=form.code.data)
        except DomainError as error:
            put_on_form(form, error)
        else:
            target = pending_next(user)
            complete_signin(user)
            if kind == "recovery":
                flash(_("You used a recovery code; %(count)d are left. New ones are made on your account page.",
                        count=twofactor.unused_recovery_codes(user)))
            return redirect(target)
    return form_page("core/login_code.html", form)


def _enrolling_user() -> tuple[User | None, bool]:
    """(who enrols, whether they are only half signed in): the signed-in account, or the one that must enrol
    before its session starts."""
    if current_user.is_authenticated:
        return portal_user(), False
    user = pending_user()
    if user is not None and not user.has_second_factor and twofactor.required_for(user):
        return user, True
    return None, True


def _enrol_secret(user: User) -> str:
    """The secret being enrolled, kept (encrypted) in the cookie between the page and the code; a new one at first."""
    kept = session.get(ENROL_KEY)
    secret = twofactor.unseal(kept["s"]) if isinstance(kept, dict) and kept.get("u") == user.id else None
    if secret is None:
        secret = twofactor.new_secret()
        session[ENROL_KEY] = {"u": user.id, "s": twofactor.seal(secret)}
    return secret


def _qr(uri: str) -> Markup:
    """The otpauth URI as an inline SVG QR code."""
    return Markup(segno.make(uri, error="m").svg_inline(scale=5, border=2, title=_("QR code for your app")))


@bp.route("/account/two-factor", methods=["GET", "POST"])
def enrol():
    """Set up the second factor: scan the QR code (or type the secret) into an authenticator app and confirm with
    its code; the ten recovery codes are then shown once. An operator (or a cashier whose owner requires it) comes
    here right after the password, and signs in only once this is done."""
    user, half = _enrolling_user()
    if user is None:
        flash(_("Please log in again."))
        return redirect(url_for("core.login"))
    if user.has_second_factor:
        flash(_("Your account has a second factor already."))
        return redirect(url_for("account.account"))
    secret = _enrol_secret(user)
    form = CodeForm()
    if form.validate_on_submit():
        try:
            target = pending_next(user) if half else url_for("account.account")
            codes = twofactor.enrol(user=user, secret=secret, code=form.code.data, keep=current_session())
        except DomainError as error:
            put_on_form(form, error)
        else:
            session.pop(ENROL_KEY, None)
            if half:
                complete_signin(user)
            else:
                sessions.mark_verified(current_session())
            return render_template("core/twofactor_codes.html", codes=codes, target=target, first=True)
    return form_page("core/twofactor_enrol.html", form, half=half, secret=twofactor.grouped(secret),
                     qr=_qr(twofactor.provisioning_uri(user=user, secret=secret)))


@bp.post("/account/two-factor/recovery-codes")
@login_required
@step_up_required
def recovery_codes():
    """Ten new recovery codes (the old ones stop working), shown once; asks for the code again first."""
    user = portal_user()
    if not user.has_second_factor:
        return redirect(url_for("two_factor.enrol"))
    codes = twofactor.new_recovery_codes(user=user)
    return render_template("core/twofactor_codes.html", codes=codes, target=url_for("account.account"), first=False)


@bp.post("/account/two-factor/off")
@login_required
@step_up_required
def turn_off():
    """Give up an optional second factor (an operator's, or a cashier's whose owner requires it, stays)."""
    try:
        twofactor.turn_off(user=portal_user(), keep=current_session())
    except DomainError as error:
        flash(message_for(error))
    else:
        flash(_("The second factor is off. Sign-in asks for the password only."))
    return redirect(url_for("account.account"))


@bp.route("/account/confirm", methods=["GET", "POST"])
@login_required
def step_up():
    """The check asked again before a page that moves money or points: the code (or the password), then back."""
    target = safe_next(request.args.get("next")) or url_for("account.account")
    form = StepUpForm(prefix=STEP_UP_PREFIX)
    status = 200
    if request.method == "POST":
        if verify_again(portal_user(), current_session(), form):
            return redirect(target)
        status = 422
    return render_template("core/step_up.html", form=form, action=request.full_path.rstrip("?"), fields=[],
                           replay=False), status


@bp.get("/backoffice/accounts")
@role_required(Role.operator)
def accounts():
    """Portal accounts found by e-mail, with their second factor, for an operator to reset a lost one."""
    query = request.args.get("email", "").strip().lower()[:254]
    found = twofactor.accounts_matching(query) if query else []
    return render_template("core/twofactor_accounts.html", query=query, found=found,
                           form=ResetSecondFactorForm(formdata=None))


@bp.post("/backoffice/accounts/<id:user_id>/second-factor/reset")
@role_required(Role.operator)
@step_up_required
def reset(user_id: int) -> Response:
    """Take another account's second factor away (a lost phone), with a reason: its sessions end, and it enrols again
    at its next sign-in where one is required. Audited."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound()
    form = ResetSecondFactorForm()
    if not form.validate_on_submit():
        flash(_("Please give a reason for the reset."))
    else:
        try:
            twofactor.reset(actor=portal_user(), user=user, reason=form.reason.data)
        except DomainError as error:
            flash(message_for(error))
        else:
            flash(_("The second factor of %(email)s is reset; its sessions are signed out.", email=user.email))
    return redirect(url_for("two_factor.accounts", email=user.email))

