"""Merchant portal pages: application, dashboard, stores, staff, invitations; the back office's merchant decisions.

Thin: each view loads what it may touch through one loader (queries), calls one operation, and renders.
The request's single commit is done by core's after_request hook.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from metropoints.core.db import db, rollback_unit_of_work
from metropoints.core.errors import DomainError
from metropoints.core.forms import ActionForm
from metropoints.core.models import Role, User
from metropoints.core.panels import WINDOW_DAYS, day_window, panels_for, parse_window_days
from metropoints.core.portal import add_nav, form_page, message_for, put_on_form, register_error_messages, role_required
from metropoints.core.signin import explain_inactive, set_home, step_up_required
from metropoints.core.twofactor import second_factor_required_for
from metropoints.marketplace import operations, queries  # queries imports the models: the tables for migrations
from metropoints.marketplace.forms import (
    CATEGORY_LABELS,
    DECISION_LABELS,
    STATUS_LABELS,
    AcceptInviteForm,
    ApplicationForm,
    DecisionForm,
    InviteForm,
    MerchantListForm,
    StoreForm,
    choices,
)
from metropoints.marketplace.models import Merchant, MerchantStatus, Store

bp = Blueprint("marketplace", __name__, url_prefix="/portal")

add_nav("marketplace.dashboard", _l("My merchant"), Role.merchant_owner, Role.cashier, order=10)
add_nav("marketplace.stores", _l("Stores"), Role.merchant_owner, order=20)
add_nav("marketplace.staff", _l("Staff"), Role.merchant_owner, order=30)
add_nav("marketplace.merchants", _l("Merchants"), Role.operator, order=10)
set_home(Role.merchant_owner, "marketplace.dashboard")


@explain_inactive
def why_cannot_sign_in(user: User):
    """Why a merchant's owner or cashier whose password matched may not sign in yet (or any more)."""
    member = queries.membership_of(user.id)
    if member is None:
        return None
    merchant = db.session.get(Merchant, member.merchant_id)
    if member.is_owner and merchant.status == MerchantStatus.applied:
        return _("Your merchant application is under review by the metro team. You can sign in once it is approved.")
    if member.is_owner and merchant.status == MerchantStatus.rejected:
        return _("Your merchant application was not approved: %(reason)s", reason=merchant.decision_reason or "-")
    return _("This account is not active: its invitation has not been accepted, or the owner deactivated it. "
             "Ask your merchant's owner.")



@second_factor_required_for
def cashier_needs_second_factor(user: User) -> bool:
    """A cashier of a merchant whose owner requires a second factor of its cashiers must have one."""
    member = queries.membership_of(user.id) if user.role == Role.cashier else None
    merchant = db.session.get(Merchant, member.merchant_id) if member is not None else None
    return bool(merchant is not None and not member.is_owner and merchant.cashiers_need_second_factor)

# Shown instead of an operation's English message, by error code.
ERROR_MESSAGES = {
    "not_staff": _l("This account does not belong to a merchant, or it has been deactivated."),
    "owner_only": _l("Only the merchant's owner may do this."),
    "not_found": _l("Not found."),
    "unknown_store": _l("No such store."),
    "invalid_invite": _l("This invitation link is not valid (any more). Ask the owner for a new one."),
    "illegal_transition": _l("This decision is not possible in the merchant's current status."),
    "reason_required": _l("Please give a reason for this decision."),
    "licence_taken": _l("A merchant with this licence number has applied already."),
    "email_taken": _l("This e-mail address already has an account."),
    "unknown_station": _l("Choose a station from the list."),
    "store_inactive": _l("This store is deactivated."),
    "forbidden": _l("Not allowed."),
}
SUSPENDED = _l("Your merchant is suspended by the metro business team, so the portal is locked. "
               "Please contact the metro business team.")
NOT_APPROVED = _l("Your merchant is not approved, so the portal is locked.")
# The decisions the back office offers from each status (each must also pass MERCHANT_TRANSITIONS).
DECISIONS_FROM = {
    MerchantStatus.applied: ("approve", "reject"),
    MerchantStatus.approved: ("suspend",),
    MerchantStatus.suspended: ("reinstate",),
    MerchantStatus.rejected: (),
}


def _locked_message(error: DomainError) -> str:
    """Why the portal is locked: suspended by the metro team, or not approved (yet)."""
    return str(SUSPENDED if error.fields.get("status") == MerchantStatus.suspended else NOT_APPROVED)


# On this blueprint's pages the app's error page, form errors and flash messages show these texts.
register_error_messages(bp.name, {**ERROR_MESSAGES, "merchant_not_approved": _locked_message})


# -- applying ----------------------------------------------------------------------------------------------------


@bp.route("/apply", methods=["GET", "POST"])
def apply():
    """The public application form: owner account, business details, licence number; the owner's mail is in the
    language of this page."""
    form = ApplicationForm()
    if form.validate_on_submit():
        try:
            operations.apply_merchant(name=form.name.data, category=form.category.data,
                                      contact_name=form.contact_name.data, contact_phone=form.contact_phone.data,
                                      licence_no=form.licence_no.data, email=form.email.data,
                                      password=form.password.data, locale=str(get_locale()))
        except DomainError as error:
            put_on_form(form, error)
        else:
            return redirect(url_for("marketplace.applied"))
    return form_page("marketplace/apply.html", form)


@bp.get("/apply/thanks")
def applied():
    """Thanks for applying: what happens next."""
    return render_template("marketplace/applied.html")


# -- the merchant's own pages ------------------------------------------------------------------------------------


@bp.get("")
@role_required(Role.merchant_owner, Role.cashier, Role.operator)
def dashboard():
    """The portal's landing page: for the owner the merchant's standing and, over 30 or 90 days (`?days=`), the
    figures other packages put on it (core/panels.py); for a cashier the store and the way to the counter."""
    if current_user.role == Role.operator:
        return redirect(url_for("marketplace.merchants"))
    member = queries.portal_membership(current_user)
    merchant = db.session.get(Merchant, member.merchant_id)
    store = db.session.get(Store, member.store_id) if member.store_id else None
    station = queries.get_station(store.station_id) if store else None
    window = day_window(parse_window_days(request.args.get("days")))
    panels = panels_for("owner_dashboard", merchant=merchant, window=window) if member.is_owner else []
    return render_template("marketplace/dashboard.html", member=member, merchant=merchant, store=store,
                           station=station, counts=queries.merchant_counts(merchant.id), panels=panels,
                           window=window, window_days=WINDOW_DAYS, status_labels=STATUS_LABELS,
                           category_labels=CATEGORY_LABELS)


@bp.get("/stores")
@role_required(Role.merchant_owner)
def stores():
    """The owner's stores."""
    member = queries.portal_membership(current_user, owner=True)
    stations = dict(queries.station_choices())
    return render_template("marketplace/stores.html", stores=queries.stores_of(member.merchant_id),
                           stations=stations, action_form=ActionForm())


def _store_form(store: Store | None = None) -> StoreForm:
    """The store form with the station picker filled, prefilled from the store when editing."""
    form = StoreForm(obj=store)
    form.station_id.choices = choices([("", _("Choose a station")), *queries.station_choices()])
    return form


@bp.route("/stores/new", methods=["GET", "POST"])
@role_required(Role.merchant_owner)
def store_new():
    """Add a store."""
    member = queries.portal_membership(current_user, owner=True)
    form = _store_form()
    if form.validate_on_submit():
        try:
            operations.create_store(actor=current_user, merchant=db.session.get(Merchant, member.merchant_id),
                                    name=form.name.data, address=form.address.data,
                                    station_id=form.station_id.data, opening_hours=form.opening_hours.data or "")
        except DomainError as error:
            put_on_form(form, error)
        else:
            flash(_("Store saved."))
            return redirect(url_for("marketplace.stores"))
    return form_page("marketplace/store_form.html", form, store=None)


@bp.route("/stores/<id:store_id>/edit", methods=["GET", "POST"])
@role_required(Role.merchant_owner)
def store_edit(store_id: int):
    """Change a store of the owner's merchant."""
    store = queries.get_store_for(current_user, store_id)
    form = _store_form(store)
    if form.validate_on_submit():
        try:
            operations.update_store(actor=current_user, store=store, name=form.name.data, address=form.address.data,
                                    station_id=form.station_id.data, opening_hours=form.opening_hours.data or "")
        except DomainError as error:
            put_on_form(form, error)
        else:
            flash(_("Store saved."))
            return redirect(url_for("marketplace.stores"))
    return form_page("marketplace/store_form.html", form, store=store)


@bp.post("/stores/<id:store_id>/deactivate")
@role_required(Role.merchant_owner)
def store_deactivate(store_id: int):
    """Close a store of the owner's merchant."""
    store = queries.get_store_for(current_user, store_id)
    operations.deactivate_store(actor=current_user, store=store)
    flash(_("Store deactivated."))
    return redirect(url_for("marketplace.stores"))


@bp.get("/staff")
@role_required(Role.merchant_owner)
def staff():
    """The merchant's owner and cashiers, with their stores and whether they have accepted."""
    member = queries.portal_membership(current_user, owner=True)
    return render_template("marketplace/staff.html", staff=queries.staff_of(member.merchant_id),
                           action_form=ActionForm(), merchant=db.session.get(Merchant, member.merchant_id))


@bp.post("/staff/second-factor")
@role_required(Role.merchant_owner)
def staff_second_factor():
    """The owner requires, or stops requiring, a second factor of the merchant's cashiers."""
    member = queries.portal_membership(current_user, owner=True)
    if ActionForm().validate_on_submit():
        required = request.form.get("required") == "1"
        operations.require_cashier_second_factor(actor=current_user, required=required,
                                                 merchant=db.session.get(Merchant, member.merchant_id))
        flash(_("Cashiers now sign in with a second factor; those without one set it up at their next sign-in.")
              if required else _("Cashiers may now sign in with the password only."))
    return redirect(url_for("marketplace.staff"))


@bp.route("/staff/invite", methods=["GET", "POST"])
@role_required(Role.merchant_owner)
def staff_invite():
    """Invite a cashier to one of the merchant's open stores; the page shows the link to pass on."""
    member = queries.portal_membership(current_user, owner=True)
    form = InviteForm()
    form.store_id.choices = choices((s.id, s.name) for s in queries.stores_of(member.merchant_id, active_only=True))
    if form.validate_on_submit():
        try:
            cashier, token = operations.invite_cashier(actor=current_user,
                                                       merchant=db.session.get(Merchant, member.merchant_id),
                                                       email=form.email.data, store_id=form.store_id.data)
        except DomainError as error:
            put_on_form(form, error)
        else:
            return _invite_link_page(cashier.user_id, token)
    return form_page("marketplace/invite.html", form)


def _invite_link_page(user_id: int, token: str):
    """The page that shows an invitation link once (only its hash is kept)."""
    link = url_for("marketplace.accept_invite", token=token, _external=True)
    return render_template("marketplace/invite_link.html", user=db.session.get(User, user_id), link=link)


@bp.post("/staff/<id:staff_id>/reinvite")
@role_required(Role.merchant_owner)
def staff_reinvite(staff_id: int):
    """A new invitation link for a cashier who has not accepted yet."""
    cashier = queries.get_staff_for(current_user, staff_id)
    try:
        token = operations.renew_invite(actor=current_user, member=cashier)
    except DomainError as error:
        flash(message_for(error))
        return redirect(url_for("marketplace.staff"))
    return _invite_link_page(cashier.user_id, token)


@bp.post("/staff/<id:staff_id>/deactivate")
@role_required(Role.merchant_owner)
def staff_deactivate(staff_id: int):
    """Lock a cashier of the owner's merchant out."""
    cashier = queries.get_staff_for(current_user, staff_id)
    operations.deactivate_cashier(actor=current_user, member=cashier)
    flash(_("Cashier deactivated."))
    return redirect(url_for("marketplace.staff"))


@bp.route("/invite/<token>", methods=["GET", "POST"])
def accept_invite(token: str):
    """An invited cashier sets their password through the owner's link, then logs in."""
    member = operations.pending_invite(token)
    form = AcceptInviteForm()
    if form.validate_on_submit():
        try:
            user = operations.accept_invite(token=token, password=form.password.data)
        except DomainError as error:
            put_on_form(form, error)
        else:
            flash(_("Your password is set. Please log in."))
            return redirect(url_for("core.login", email=user.email))
    return form_page("marketplace/accept_invite.html", form, user=db.session.get(User, member.user_id),
                     store=db.session.get(Store, member.store_id))


# -- the back office ---------------------------------------------------------------------------------------------


@bp.get("/backoffice/merchants")
@role_required(Role.operator)
def merchants():
    """Merchants for the metro business team: searched, of one status, sorted, a page at a time (newest
    application first unless sorted otherwise)."""
    form = MerchantListForm(request.args)
    search = queries.MerchantSearch(**form.values())
    rows, more = queries.list_merchants(search)
    return render_template("marketplace/merchants.html", rows=rows, more=more, search=search, form=form,
                           status=search.status, status_labels=STATUS_LABELS, category_labels=CATEGORY_LABELS)


def _merchant_page(merchant: Merchant, form: DecisionForm | None = None, status: int = 200):
    """A merchant's details, stores, staff, audit log and the decisions possible now; then what other packages
    show about it (campaigns, statements, coupons: core/panels.py) over 30 or 90 days (`?days=`)."""
    stations = dict(queries.station_choices())
    window = day_window(parse_window_days(request.args.get("days")))
    return render_template(
        "marketplace/merchant.html", merchant=merchant, owner=db.session.get(User, merchant.owner_id),
        stores=queries.stores_of(merchant.id), staff=queries.staff_of(merchant.id), stations=stations,
        audit=queries.merchant_audit(merchant.id), decisions=DECISIONS_FROM[merchant.status],
        decision_labels=DECISION_LABELS, form=form or DecisionForm(formdata=None), status_labels=STATUS_LABELS,
        category_labels=CATEGORY_LABELS, window=window, window_days=WINDOW_DAYS,
        panels=panels_for("operator_merchant", merchant=merchant, window=window),
    ), status


@bp.get("/backoffice/merchants/<id:merchant_id>")
@role_required(Role.operator)
def merchant(merchant_id: int):
    """One merchant for the back office."""
    return _merchant_page(queries.get_merchant(merchant_id))


@bp.post("/backoffice/merchants/<id:merchant_id>/decision")
@role_required(Role.operator)
@step_up_required(when=lambda: request.form.get("decision") == "suspend")
def merchant_decide(merchant_id: int):
    """Approve, reject (with a reason), suspend (with a reason) or reinstate a merchant; audited."""
    target = queries.get_merchant(merchant_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        return _merchant_page(target, form, 422)
    try:
        operations.decide_merchant(actor=current_user, merchant=target, decision=form.decision.data,
                                   reason=form.reason.data or "")
    except DomainError as error:
        rollback_unit_of_work()
        put_on_form(form, error)
        return _merchant_page(db.session.get(Merchant, merchant_id), form, error.http_status)
    flash(_("Decision saved."))
    return redirect(url_for("marketplace.merchant", merchant_id=merchant_id))
