"""Redemption pages: the cashier's counter and the owner's activity.

The counter: scan a coupon (camera or USB scanner) or type its code or its 12-digit counter code, see at once
whether it is accepted, and today's validations at the store; the same `validate` operation as the POS API. A store
whose counter is refused for too many unknown codes is named on the counter page and on the owner's activity
page. The activity page: per campaign and per store over a period of Asia/Shanghai days, and the coupons behind
them as a streamed CSV. Thin: the app commits once per request (on a reply below 400).
"""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from metropoints.core.csvexport import csv_download
from metropoints.core.errors import DomainError, InvalidInput
from metropoints.core.models import Role
from metropoints.core.panels import DayWindow
from metropoints.core.portal import add_nav, portal_user, role_required
from metropoints.core.replica import stale_ok, stale_ok_rows
from metropoints.core.signin import set_home
from metropoints.core.templating import local_datetime
from metropoints.core.timeutil import isoformat
from metropoints.marketplace.queries import portal_membership, stores_of
from metropoints.redemption.counter import counter_store
from metropoints.redemption.forms import period_from
from metropoints.redemption.operations import validate
from metropoints.redemption.queries import (
    CSV_HEADER,
    active_counter_locks,
    campaign_activity,
    coupon_rows,
    store_activity,
    store_name,
    todays_validations,
)

counter_bp = Blueprint("counter", __name__, url_prefix="/portal/counter")
activity_bp = Blueprint("activity", __name__, url_prefix="/portal/activity")
staff_only = role_required(Role.cashier, Role.merchant_owner)
owner_only = role_required(Role.merchant_owner)
add_nav("counter.page", _l("Counter"), Role.cashier, Role.merchant_owner, order=5)
set_home(Role.cashier, "counter.page")
add_nav("activity.page", _l("Activity"), Role.merchant_owner, order=30)

# What the cashier reads, per result code (the operation's own messages are English only).
MESSAGES = {
    "accepted": _l("Accepted"),
    "already_used": _l("Already used"),
    "expired": _l("Expired"),
    "cancelled": _l("Cancelled"),
    "wrong_merchant": _l("Wrong merchant: this coupon is for another merchant"),
    "wrong_store": _l("Wrong store: this coupon is not valid at this store"),
    "unknown_code": _l("Unknown code"),
}


def _refusal_message(refused: DomainError) -> str:
    """What the cashier reads for a refusal; a counter refused for too many unknown codes says until when."""
    if refused.code == "too_many_attempts":
        return _("Too many unknown codes: this counter is refused until %(until)s",
                 until=local_datetime(refused.fields["until"]))
    return str(MESSAGES.get(refused.code, refused.message))


# -- the counter -------------------------------------------------------------------------------------------------


def _store_id_arg() -> int | None:
    """An owner's chosen store (query string, form or JSON body); None when not given or not a number."""
    body = request.get_json(silent=True) if request.is_json else None
    raw = (body or {}).get("store_id") if isinstance(body, dict) else None
    raw = raw if raw is not None else request.values.get("store_id")
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _check(code: object, store_id: int | None) -> tuple[dict, int]:
    """Validate a code at the user's store: the reply (as JSON fields) and its HTTP status, as the API's."""
    try:
        accepted = validate(cashier=portal_user(), code=code, store_id=store_id)
    except DomainError as refused:
        reply = {"result": "refused", "code": refused.code, "message": _refusal_message(refused)}
        used_at, where, until = (refused.fields.get(name) for name in ("used_at", "store_id", "until"))
        if until is not None:
            reply["until"] = isoformat(until)
        if used_at is not None:
            reply["used_at"] = isoformat(used_at)
            reply["used_at_local"] = local_datetime(used_at)
        if where is not None:
            reply["store_id"] = where
            reply["store_name"] = store_name(where)
        return reply, refused.http_status
    return {"result": "accepted", "code": "accepted", "message": str(MESSAGES["accepted"]),
            "title": accepted.title, "coupon_id": accepted.coupon_id, "store_id": accepted.store_id,
            "validated_at_local": local_datetime(accepted.used_at)}, 200


def _counter_page(result: dict | None = None, status: int = 200):
    """The page: the scan field, the result (after a form post), today's list; an owner picks a store first."""
    user, store_id = portal_user(), _store_id_arg()
    member, owner = portal_membership(user), user.role == Role.merchant_owner
    stores = stores_of(member.merchant_id, active_only=True) if owner else []
    try:
        store = counter_store(user, store_id)
    except InvalidInput:  # an owner who has not chosen a store yet
        store = None
    today = todays_validations(store.id) if store else []
    # An owner hears of every store of theirs whose counter is refused, a cashier of their own store.
    locks = active_counter_locks(merchant_id=member.merchant_id, store_id=None if owner else member.store_id)
    return render_template("redemption/counter.html", store=store, stores=stores, result=result,
                           today=today, locks=locks), status


@counter_bp.get("")
@staff_only
def page():
    """The counter page."""
    return _counter_page()


@counter_bp.post("")
@staff_only
def submit():
    """Without JavaScript: the form posts the code here and the page comes back with the result."""
    result, status = _check(request.form.get("code", ""), _store_id_arg())
    return _counter_page(result, status)


@counter_bp.post("/validate")
@staff_only
def validate_json():
    """The page's script: {code} in, the result as JSON, with the API's statuses."""
    body = request.get_json(silent=True)
    code = body.get("code") if isinstance(body, dict) else None
    result, status = _check(code, _store_id_arg())
    return jsonify(result), status


# -- the owner's activity ----------------------------------------------------------------------------------------


def _activity_page(merchant_id: int, period: DayWindow, error: str | None, raw: dict[str, str]):
    """The page; 422 with the form error when the dates were invalid."""
    if error:
        return render_template("redemption/activity.html", error=error, form=raw, period=None, campaigns=[],
                               stores=[]), 422
    return render_template("redemption/activity.html", error=None, period=period,
                           form={"from": period.first.isoformat(), "to": period.last.isoformat()},
                           campaigns=campaign_activity(merchant_id, period),
                           stores=store_activity(merchant_id, period),
                           locks=active_counter_locks(merchant_id=merchant_id))


@activity_bp.get("", endpoint="page")  # the counter's view function has the name `page`
@owner_only
@stale_ok
def activity_page():
    """The activity tables for a period."""
    member = portal_membership(portal_user(), owner=True)
    period, error, raw = period_from(request.args)
    return _activity_page(member.merchant_id, period, error, raw)


@owner_only
@stale_ok
def export():
    """The coupons of the period as a streamed CSV download."""
    member = portal_membership(portal_user(), owner=True)
    period, error, raw = period_from(request.args)
    if error:
        return _activity_page(member.merchant_id, period, error, raw)
    filename = f"activity-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return csv_download(filename, CSV_HEADER, stale_ok_rows(coupon_rows(member.merchant_id, period)))


@activity_bp.record_once
def _register_csv_route(state) -> None:
    """The CSV sits beside the page (/portal/activity.csv), which a blueprint rule, always below its prefix,
    cannot express: the app gets the rule, under the blueprint's endpoint name."""
    state.app.add_url_rule(f"{state.url_prefix or activity_bp.url_prefix}.csv", endpoint=f"{activity_bp.name}.export",
                           view_func=export, methods=["GET"])
