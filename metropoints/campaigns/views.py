"""Campaign pages: the merchant's editor and list, the back office's review queue and featuring. Thin: load, check
the role, call an operation, show its refusal; the app commits once per request."""

from __future__ import annotations

import json

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from wtforms import SelectChoice

from metropoints.campaigns import catalogue, images, models  # noqa: F401  (models: the tables, for migrations)
from metropoints.campaigns import operations as ops
from metropoints.campaigns.errors import CampaignLocked, CampaignNotFound, InvalidCampaign, RevisionNotFound
from metropoints.campaigns.forms import FIELD_OF, ActionForm, CampaignForm, FeatureForm, ReviewForm, StockForm
from metropoints.campaigns.models import Campaign, CampaignRevision, CampaignStatus
from metropoints.core.db import db, rollback_unit_of_work
from metropoints.core.errors import DomainError
from metropoints.core.models import AuditEntry, Role, Station, User
from metropoints.core.portal import add_nav, role_required
from metropoints.core.timeutil import SERVICE_ZONE
from metropoints.marketplace.models import Merchant

bp = Blueprint("campaigns", __name__, url_prefix="/portal/campaigns")
owner_only = role_required(Role.merchant_owner)
operator_only = role_required(Role.operator)
add_nav("campaigns.index", _l("Campaigns"), Role.merchant_owner, order=30)
add_nav("campaigns.review_queue", _l("Review queue"), Role.operator, order=30)


@bp.app_template_filter("campaign_time")
def campaign_time(moment) -> str:
    """A stored UTC time as the service zone's local date and minute."""
    return moment.astimezone(SERVICE_ZONE).strftime("%Y-%m-%d %H:%M") if moment else ""


def _me() -> User:
    """The logged-in portal user (the object itself, not the proxy)."""
    return current_user._get_current_object()


def _refused(error: DomainError, target: str):
    """Undo the refused change, show why, and go back."""
    rollback_unit_of_work()
    flash(str(error.message))
    return redirect(target)


def _campaign_form(merchant: Merchant, *, with_stock: bool = True) -> CampaignForm:
    """The editor, its store checkboxes listing the merchant's own active stores only."""
    form = CampaignForm()
    form.store_ids.choices = [SelectChoice(s.id, f"{s.name} · {s.address}") for s in ops.merchant_stores(merchant)]
    if not with_stock:
        del form.stock_total
    return form


def _form_data(form: CampaignForm) -> dict | None:
    """The form's values with a newly uploaded image saved; None (with the error on the field) when it is refused."""
    data = form.campaign_data()
    upload = form.image.data
    if upload and getattr(upload, "filename", ""):
        try:
            data["image_name"] = images.save_image(upload.stream)
        except InvalidCampaign as error:
            form.image.errors = [*form.image.errors, str(error.message)]
            return None
    return data


def _show_refusal(form: CampaignForm, error: DomainError) -> None:
    """Put a rule's refusal on the field it names (or above the form)."""
    name = FIELD_OF.get(error.fields.get("field", ""), error.fields.get("field", ""))
    if name in form._fields:
        form[name].errors = [*form[name].errors, str(error.message)]
    else:
        flash(str(error.message))


@bp.get("/")
@owner_only
def index():
    """The owner's campaigns, newest first, with their derived state."""
    merchant = ops.owner_merchant(_me())
    campaigns = db.session.scalars(select(Campaign).where(Campaign.merchant_id == merchant.id)
                                   .order_by(Campaign.id.desc())).all()
    return render_template("campaigns/list.html", merchant=merchant,
                           rows=[(c, catalogue.badge(c, merchant)) for c in campaigns])


@bp.route("/new", methods=["GET", "POST"])
@owner_only
def create():
    """A new draft campaign."""
    merchant = ops.owner_merchant(_me())
    form = _campaign_form(merchant)
    if form.validate_on_submit() and (data := _form_data(form)) is not None:
        try:
            campaign = ops.create_campaign(owner=_me(), data=data)
        except InvalidCampaign as error:
            _show_refusal(form, error)
        else:
            flash(_("Draft saved. Submit it for review when it is ready."))
            return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    status = 422 if request.method == "POST" else 200
    return render_template("campaigns/form.html", form=form, campaign=None), status


@bp.get("/<int:campaign_id>")
@owner_only
def detail(campaign_id: int):
    """One campaign of the owner's merchant: state, stores, the revision under review, actions."""
    campaign = ops.owned_campaign(owner=_me(), campaign_id=campaign_id)
    merchant = db.session.get(Merchant, campaign.merchant_id)
    revision = ops.pending_revision(campaign)
    return render_template("campaigns/detail.html", campaign=campaign, merchant=merchant,
                           state=catalogue.badge(campaign, merchant),
                           stores=catalogue.stores_of([campaign.id])[campaign.id], revision=revision,
                           diff=ops.revision_diff(revision) if revision else [], stock_form=StockForm(),
                           action_form=ActionForm())


@bp.route("/<int:campaign_id>/edit", methods=["GET", "POST"])
@owner_only
def edit(campaign_id: int):
    """Edit a draft or rejected campaign in place, or propose a revision of an approved one (reviewed first)."""
    campaign = ops.owned_campaign(owner=_me(), campaign_id=campaign_id)
    if campaign.status not in ops.EDITABLE | ops.REVISED:
        raise CampaignLocked()
    merchant = db.session.get(Merchant, campaign.merchant_id)
    form = _campaign_form(merchant, with_stock=campaign.status in ops.EDITABLE)
    if request.method == "GET":
        form.set_values(ops.editor_values(campaign))
    elif form.validate_on_submit() and (data := _form_data(form)) is not None:
        try:
            revision = ops.update_campaign(owner=_me(), campaign=campaign, data=data)
        except InvalidCampaign as error:
            _show_refusal(form, error)
        else:
            flash(_("Your changes go to review; riders see the approved version until then.") if revision
                  else _("Saved."))
            return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    status = 422 if request.method == "POST" else 200
    return render_template("campaigns/form.html", form=form, campaign=campaign), status


OWNER_ACTIONS = {"submit": (ops.submit_campaign, _l("Submitted for review.")),
                 "pause": (ops.pause_campaign, _l("Paused: off sale until you resume it.")),
                 "resume": (ops.resume_campaign, _l("Resumed.")),
                 "end": (ops.end_campaign, _l("Ended."))}


@bp.post("/<int:campaign_id>/<any(submit, pause, resume, end):action>")
@owner_only
def owner_action(campaign_id: int, action: str):
    """Submit, pause, resume or end a campaign; a change the status does not allow is explained, not done."""
    campaign = ops.owned_campaign(owner=_me(), campaign_id=campaign_id)
    target = url_for("campaigns.detail", campaign_id=campaign.id)
    if not ActionForm().validate_on_submit():
        abort(400)
    operation, done = OWNER_ACTIONS[action]
    try:
        operation(owner=_me(), campaign=campaign)
    except DomainError as error:
        return _refused(error, target)
    flash(str(done))
    return redirect(target)


@bp.post("/<int:campaign_id>/stock")
@owner_only
def add_stock(campaign_id: int):
    """Raise an approved campaign's stock at once."""
    campaign = ops.owned_campaign(owner=_me(), campaign_id=campaign_id)
    target = url_for("campaigns.detail", campaign_id=campaign.id)
    form = StockForm()
    if not form.validate_on_submit():
        flash(" ".join(str(e) for e in form.amount.errors) or _("Add 1 to 1,000,000 coupons."))
        return redirect(target)
    try:
        ops.raise_stock(owner=_me(), campaign=campaign, amount=form.amount.data)
    except DomainError as error:
        return _refused(error, target)
    flash(_("Stock added: %(n)s more coupons on sale.", n=form.amount.data))
    return redirect(target)


@bp.get("/review")
@operator_only
def review_queue():
    """Submitted campaigns and pending revisions, oldest first; approved campaigns to feature."""
    submitted, revisions = ops.review_queue()
    approved = db.session.execute(select(Campaign, Merchant).join(Merchant, Merchant.id == Campaign.merchant_id)
                                  .where(Campaign.status == CampaignStatus.approved)
                                  .order_by(Campaign.id.desc()).limit(100)).all()
    merchants = {m.id: m for m in db.session.scalars(select(Merchant).where(
        Merchant.id.in_({c.merchant_id for c in submitted} | {c.merchant_id for _r, c in revisions})))}
    return render_template("campaigns/review_queue.html", submitted=submitted, revisions=revisions,
                           approved=approved, merchants=merchants)


def _history(campaign: Campaign) -> list[AuditEntry]:
    """The audit entries about a campaign, newest first."""
    subject = f"campaign:{campaign.id}"
    return list(db.session.scalars(select(AuditEntry).where(
        (AuditEntry.subject == subject) | AuditEntry.subject.startswith(subject + " "))
        .order_by(AuditEntry.id.desc())))


@bp.route("/review/<int:campaign_id>", methods=["GET", "POST"])
@operator_only
def review_campaign(campaign_id: int):
    """A campaign as the reviewer sees it, with the decision form while it is submitted."""
    campaign = ops.get_campaign(campaign_id)
    form = ReviewForm()
    if form.validate_on_submit():
        target = url_for("campaigns.review_queue")
        try:
            if form.decision.data == "approve":
                ops.approve_campaign(operator=_me(), campaign=campaign, reason=form.reason.data)
            else:
                ops.reject_campaign(operator=_me(), campaign=campaign, reason=form.reason.data)
        except DomainError as error:
            return _refused(error, url_for("campaigns.review_campaign", campaign_id=campaign.id))
        flash(_("Approved.") if form.decision.data == "approve" else _("Rejected; the merchant sees your reason."))
        return redirect(target)
    merchant = db.session.get(Merchant, campaign.merchant_id)
    status = 422 if request.method == "POST" else 200
    return render_template("campaigns/review_campaign.html", campaign=campaign, merchant=merchant, form=form,
                           state=catalogue.badge(campaign, merchant), history=_history(campaign),
                           stores=catalogue.stores_of([campaign.id])[campaign.id]), status


@bp.route("/review/revisions/<int:revision_id>", methods=["GET", "POST"])
@operator_only
def review_revision(revision_id: int):
    """A proposed change to a live campaign, as a diff (field, before, after), with the decision form."""
    revision = db.session.get(CampaignRevision, revision_id)
    if revision is None:
        raise RevisionNotFound()
    campaign = ops.get_campaign(revision.campaign_id)
    form = ReviewForm()
    if form.validate_on_submit():
        try:
            if form.decision.data == "approve":
                ops.approve_revision(operator=_me(), revision=revision, reason=form.reason.data)
            else:
                ops.reject_revision(operator=_me(), revision=revision, reason=form.reason.data)
        except DomainError as error:
            return _refused(error, url_for("campaigns.review_revision", revision_id=revision.id))
        flash(_("Revision approved: riders see it now.") if form.decision.data == "approve"
              else _("Revision rejected; the approved version stays."))
        return redirect(url_for("campaigns.review_queue"))
    status = 422 if request.method == "POST" else 200
    return render_template("campaigns/review_revision.html", revision=revision, campaign=campaign, form=form,
                           merchant=db.session.get(Merchant, campaign.merchant_id),
                           diff=ops.revision_diff(revision), proposed=json.loads(revision.proposed_json)), status


@bp.route("/<int:campaign_id>/features", methods=["GET", "POST"])
@operator_only
def features(campaign_id: int):
    """Feature an approved campaign on the kiosks of chosen stations, or stop featuring it somewhere."""
    campaign = ops.get_campaign(campaign_id)
    stations = db.session.scalars(select(Station).order_by(Station.station_id)).all()
    form = FeatureForm()
    form.station_ids.choices = [SelectChoice(s.station_id, f"{s.station_id} {s.name_zh} {s.name_en}")
                                for s in stations]
    target = url_for("campaigns.features", campaign_id=campaign.id)
    if form.validate_on_submit():
        try:
            added = ops.feature_campaign(operator=_me(), campaign=campaign, station_ids=form.station_ids.data)
        except DomainError as error:
            return _refused(error, target)
        flash(_("Featured at %(n)s more stations.", n=len(added)))
        return redirect(target)
    names = {s.station_id: s for s in stations}
    status = 422 if request.method == "POST" else 200
    return render_template("campaigns/features.html", campaign=campaign, form=form, action_form=ActionForm(),
                           features=ops.features_of(campaign), stations=names), status


@bp.post("/<int:campaign_id>/features/<station_id>/remove")
@operator_only
def unfeature(campaign_id: int, station_id: str):
    """Stop featuring a campaign at one station."""
    campaign = ops.get_campaign(campaign_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    ops.unfeature_campaign(operator=_me(), campaign=campaign, station_id=station_id)
    flash(_("No longer featured at %(station)s.", station=station_id))
    return redirect(url_for("campaigns.features", campaign_id=campaign.id))


@bp.get("/images/<name>")
def image(name: str):
    """A campaign image, public (the rider apps and kiosks show it)."""
    path = images.image_path(name)
    if path is None:
        raise CampaignNotFound()
    return send_file(path, mimetype=images.MIMETYPES[name.rsplit(".", 1)[1]], max_age=86400)
