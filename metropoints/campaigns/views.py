"""Campaign pages: the merchant's editor and list, duplication and withdrawal, the preview, the back office's review
queue and featuring. Thin: load, check the role, call an operation, show its refusal; the app commits once per
request."""

from __future__ import annotations

import json

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SelectChoice

from metropoints.campaigns import catalogue, images, queries
from metropoints.campaigns import operations as ops
from metropoints.campaigns.errors import CampaignLocked, CampaignNotFound, InvalidCampaign
from metropoints.campaigns.fields import refuse_ended_sale, sale_over
from metropoints.campaigns.forms import FIELD_OF, CampaignForm, FeatureForm, ReviewForm, StockForm
from metropoints.campaigns.models import EDITABLE, REVISED
from metropoints.campaigns.preview import Preview, kiosk_stores_line, preview_of
from metropoints.core.db import rollback_unit_of_work
from metropoints.core.errors import DomainError
from metropoints.core.forms import ActionForm
from metropoints.core.models import Role
from metropoints.core.portal import add_nav, form_page, message_for, portal_user, put_on_form, role_required
from metropoints.core.signin import set_home
from metropoints.marketplace.models import Merchant

bp = Blueprint("campaigns", __name__, url_prefix="/portal/campaigns")
owner_only = role_required(Role.merchant_owner)
operator_only = role_required(Role.operator)
owner_or_operator = role_required(Role.merchant_owner, Role.operator)
add_nav("campaigns.index", _l("Campaigns"), Role.merchant_owner, order=30)
add_nav("campaigns.review_queue", _l("Review queue"), Role.operator, order=30)
set_home(Role.operator, "campaigns.review_queue")  # what waits for the metro team; the KPIs are one link away


def _refused(error: DomainError, target: str):
    """Undo the refused change, show why, and go back."""
    rollback_unit_of_work()
    flash(message_for(error))
    return redirect(target)


def _campaign_form(merchant: Merchant, *, with_stock: bool = True) -> CampaignForm:
    """The editor, its store checkboxes listing the merchant's own active stores only."""
    form = CampaignForm()
    form.store_ids.choices = [SelectChoice(s.id, f"{s.name} · {s.address}") for s in queries.merchant_stores(merchant)]
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


@bp.get("/")
@owner_only
def index():
    """The owner's campaigns, newest first, with their derived state."""
    merchant = queries.owner_merchant(portal_user())
    return render_template("campaigns/list.html", merchant=merchant,
                           rows=[(c, catalogue.badge(c, merchant)) for c in queries.owner_campaigns(merchant)],
                           action_form=ActionForm())


@bp.route("/new", methods=["GET", "POST"])
@owner_only
def create():
    """A new draft campaign."""
    merchant = queries.owner_merchant(portal_user())
    form = _campaign_form(merchant)
    if form.validate_on_submit() and (data := _form_data(form)) is not None:
        try:
            campaign = ops.create_campaign(owner=portal_user(), data=data)
        except InvalidCampaign as error:
            put_on_form(form, error, FIELD_OF)
        else:
            flash(_("Draft saved. Submit it for review when it is ready."))
            return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    return form_page("campaigns/form.html", form, campaign=None)


@bp.get("/<id:campaign_id>")
@owner_only
def detail(campaign_id: int):
    """One campaign of the owner's merchant: state, stores, the revision under review, actions."""
    campaign = queries.owned_campaign(owner=portal_user(), campaign_id=campaign_id)
    merchant = queries.merchant_of(campaign)
    revision = queries.pending_revision(campaign)
    return render_template("campaigns/detail.html", campaign=campaign, merchant=merchant,
                           state=catalogue.badge(campaign, merchant),
                           stores=catalogue.stores_of([campaign.id])[campaign.id], revision=revision,
                           diff=queries.revision_diff(revision) if revision else [], stock_form=StockForm(),
                           action_form=ActionForm(), sale_over=sale_over(campaign.valid_until))


@bp.route("/<id:campaign_id>/edit", methods=["GET", "POST"])
@owner_only
def edit(campaign_id: int):
    """Edit a draft or rejected campaign in place, or propose a revision of an approved one (reviewed first)."""
    campaign = queries.owned_campaign(owner=portal_user(), campaign_id=campaign_id)
    if campaign.status not in EDITABLE | REVISED:
        raise CampaignLocked()
    form = _campaign_form(queries.merchant_of(campaign), with_stock=campaign.status in EDITABLE)
    if request.method == "GET":
        values = queries.editor_values(campaign)
        form.set_values(values)
        try:  # a copy of an old campaign keeps its dates: say at once that they need changing
            refuse_ended_sale(values["valid_until"])
        except InvalidCampaign as error:
            put_on_form(form, error, FIELD_OF)
    elif form.validate_on_submit() and (data := _form_data(form)) is not None:
        try:
            revision = ops.update_campaign(owner=portal_user(), campaign=campaign, data=data)
        except InvalidCampaign as error:
            put_on_form(form, error, FIELD_OF)
        else:
            flash(_("Your changes go to review; riders see the approved version until then.") if revision
                  else _("Saved."))
            return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    return form_page("campaigns/form.html", form, campaign=campaign)


OWNER_ACTIONS = {"submit": (ops.submit_campaign, _l("Submitted for review.")),
                 "pause": (ops.pause_campaign, _l("Paused: off sale until you resume it.")),
                 "resume": (ops.resume_campaign, _l("Resumed.")),
                 "end": (ops.end_campaign, _l("Ended.")),
                 "withdraw": (ops.withdraw_submission, _l("Withdrawn from review: the campaign is a draft again.")),
                 "withdraw_changes": (ops.withdraw_revision,
                                      _l("Changes withdrawn: riders keep seeing the approved version."))}


@bp.post("/<id:campaign_id>/<any(submit, pause, resume, end, withdraw, withdraw_changes):action>")
@owner_only
def owner_action(campaign_id: int, action: str):
    """Submit, pause, resume or end a campaign, or withdraw it (or its changes) from review; a change the status does
    not allow is explained, not done."""
    campaign = queries.owned_campaign(owner=portal_user(), campaign_id=campaign_id)
    target = url_for("campaigns.detail", campaign_id=campaign.id)
    if not ActionForm().validate_on_submit():
        abort(400)
    operation, done = OWNER_ACTIONS[action]
    try:
        operation(owner=portal_user(), campaign=campaign)
    except DomainError as error:
        return _refused(error, target)
    flash(str(done))
    return redirect(target)


@bp.post("/<id:campaign_id>/duplicate")
@owner_only
def duplicate(campaign_id: int):
    """Copy a campaign into a new draft and open it in the editor."""
    campaign = queries.owned_campaign(owner=portal_user(), campaign_id=campaign_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        copy = ops.duplicate_campaign(owner=portal_user(), campaign=campaign)
    except DomainError as error:
        return _refused(error, url_for("campaigns.detail", campaign_id=campaign.id))
    flash(_("Copied into a new draft: check it, then submit it for review."))
    return redirect(url_for("campaigns.edit", campaign_id=copy.id))


def _previewed(campaign_id: int) -> tuple[Preview, Merchant]:
    """The preview of a campaign the portal user may look at, and its merchant."""
    campaign = queries.viewable_campaign(user=portal_user(), campaign_id=campaign_id)
    merchant = queries.merchant_of(campaign)
    return preview_of(campaign, merchant), merchant


@bp.get("/<id:campaign_id>/preview")
@owner_or_operator
def preview(campaign_id: int):
    """A campaign, before it is live, as the rider app and a kiosk's card will show it (its changes under review,
    when it has some), for its owner and for the metro team."""
    shown, merchant = _previewed(campaign_id)
    kiosk_card = render_template("campaigns/kiosk_card.html", preview=shown,
                                 stores_line=kiosk_stores_line(shown.item))
    return render_template("campaigns/preview.html", preview=shown, campaign=shown.campaign, merchant=merchant,
                           state=catalogue.badge(shown.campaign, merchant), kiosk_card=kiosk_card,
                           sale_over=sale_over(shown.version.valid_until))


@bp.get("/<id:campaign_id>/preview.json")
@owner_or_operator
def preview_item(campaign_id: int):
    """The preview's catalogue item as the JSON the rider app receives."""
    return jsonify(_previewed(campaign_id)[0].item)


@bp.post("/<id:campaign_id>/stock")
@owner_only
def add_stock(campaign_id: int):
    """Raise an approved campaign's stock at once."""
    campaign = queries.owned_campaign(owner=portal_user(), campaign_id=campaign_id)
    target = url_for("campaigns.detail", campaign_id=campaign.id)
    form = StockForm()
    if not form.validate_on_submit():
        flash(" ".join(str(e) for e in form.amount.errors) or _("Add 1 to 1,000,000 coupons."))
        return redirect(target)
    try:
        ops.raise_stock(owner=portal_user(), campaign=campaign, amount=form.amount.data)
    except DomainError as error:
        return _refused(error, target)
    flash(_("Stock added: %(n)s more coupons on sale.", n=form.amount.data))
    return redirect(target)


@bp.get("/review")
@operator_only
def review_queue():
    """Submitted campaigns and pending revisions, oldest first; approved campaigns to feature."""
    submitted, revisions = queries.review_queue()
    merchants = queries.merchants_by_id({c.merchant_id for c in submitted} | {c.merchant_id for _r, c in revisions})
    return render_template("campaigns/review_queue.html", submitted=submitted, revisions=revisions,
                           approved=queries.approved_campaigns(), merchants=merchants)


@bp.route("/review/<id:campaign_id>", methods=["GET", "POST"])
@operator_only
def review_campaign(campaign_id: int):
    """A campaign as the reviewer sees it, with the decision form while it is submitted."""
    campaign = queries.get_campaign(campaign_id)
    form = ReviewForm()
    if form.validate_on_submit():
        target = url_for("campaigns.review_queue")
        try:
            if form.decision.data == "approve":
                ops.approve_campaign(operator=portal_user(), campaign=campaign, reason=form.reason.data)
            else:
                ops.reject_campaign(operator=portal_user(), campaign=campaign, reason=form.reason.data)
        except DomainError as error:
            return _refused(error, url_for("campaigns.review_campaign", campaign_id=campaign.id))
        flash(_("Approved.") if form.decision.data == "approve" else _("Rejected; the merchant sees your reason."))
        return redirect(target)
    merchant = queries.merchant_of(campaign)
    return form_page("campaigns/review_campaign.html", form, campaign=campaign, merchant=merchant,
                     state=catalogue.badge(campaign, merchant), history=queries.campaign_history(campaign),
                     stores=catalogue.stores_of([campaign.id])[campaign.id])


@bp.route("/review/revisions/<id:revision_id>", methods=["GET", "POST"])
@operator_only
def review_revision(revision_id: int):
    """A proposed change to a live campaign, as a diff (field, before, after), with the decision form."""
    revision = queries.get_revision(revision_id)
    campaign = queries.get_campaign(revision.campaign_id)
    form = ReviewForm()
    if form.validate_on_submit():
        try:
            if form.decision.data == "approve":
                ops.approve_revision(operator=portal_user(), revision=revision, reason=form.reason.data)
            else:
                ops.reject_revision(operator=portal_user(), revision=revision, reason=form.reason.data)
        except DomainError as error:
            return _refused(error, url_for("campaigns.review_revision", revision_id=revision.id))
        flash(_("Revision approved: riders see it now.") if form.decision.data == "approve"
              else _("Revision rejected; the approved version stays."))
        return redirect(url_for("campaigns.review_queue"))
    return form_page("campaigns/review_revision.html", form, revision=revision, campaign=campaign,
                     merchant=queries.merchant_of(campaign), diff=queries.revision_diff(revision),
                     proposed=json.loads(revision.proposed_json))


@bp.route("/<id:campaign_id>/features", methods=["GET", "POST"])
@operator_only
def features(campaign_id: int):
    """Feature an approved campaign on the kiosks of chosen stations, or stop featuring it somewhere."""
    campaign = queries.get_campaign(campaign_id)
    stations = queries.stations()
    form = FeatureForm()
    form.station_ids.choices = [SelectChoice(s.station_id, f"{s.station_id} {s.name_zh} {s.name_en}")
                                for s in stations]
    target = url_for("campaigns.features", campaign_id=campaign.id)
    if form.validate_on_submit():
        try:
            added = ops.feature_campaign(operator=portal_user(), campaign=campaign, station_ids=form.station_ids.data)
        except DomainError as error:
            return _refused(error, target)
        flash(_("Featured at %(n)s more stations.", n=len(added)))
        return redirect(target)
    return form_page("campaigns/features.html", form, campaign=campaign, action_form=ActionForm(),
                     features=queries.features_of(campaign), stations={s.station_id: s for s in stations})


@bp.post("/<id:campaign_id>/features/<station_id>/remove")
@operator_only
def unfeature(campaign_id: int, station_id: str):
    """Stop featuring a campaign at one station."""
    campaign = queries.get_campaign(campaign_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    ops.unfeature_campaign(operator=portal_user(), campaign=campaign, station_id=station_id)
    flash(_("No longer featured at %(station)s.", station=station_id))
    return redirect(url_for("campaigns.features", campaign_id=campaign.id))


@bp.get("/images/<name>")
def image(name: str):
    """A campaign image, public (the rider apps and kiosks show it)."""
    path = images.image_path(name)
    if path is None:
        raise CampaignNotFound()
    return send_file(path, mimetype=images.MIMETYPES[name.rsplit(".", 1)[1]], max_age=86400)
