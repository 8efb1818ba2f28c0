"""The cashier's counter page: scan a coupon (camera or USB scanner) or type its code, see at once whether it is
accepted, and today's validations at the store. Thin: the same `validate` operation as the POS API; the app
commits once per request (on a reply below 400)."""

from __future__ import annotations

from datetime import datetime, time

from flask import Blueprint, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from metropoints.campaigns.models import Campaign, Coupon
from metropoints.campaigns.redemption import counter_store, validate
from metropoints.core.db import db
from metropoints.core.errors import DomainError, InvalidInput
from metropoints.core.models import Role, User
from metropoints.core.portal import add_nav, role_required
from metropoints.core.timeutil import SERVICE_ZONE, utcnow
from metropoints.marketplace.models import Store
from metropoints.marketplace.queries import portal_membership

bp = Blueprint("counter", __name__, url_prefix="/portal/counter")
staff_only = role_required(Role.cashier, Role.merchant_owner)
add_nav("counter.page", _l("Counter"), Role.cashier, order=5)

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


def _me() -> User:
    """The logged-in portal user (the object itself, not the proxy)."""
    return current_user._get_current_object()


def _store_id_arg() -> int | None:
    """An owner's chosen store (query string, form or JSON body); None when not given or not a number."""
    body = request.get_json(silent=True) if request.is_json else None
    raw = (body or {}).get("store_id") if isinstance(body, dict) else None
    raw = raw if raw is not None else request.values.get("store_id")
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _local(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time in the service zone."""
    return moment.astimezone(SERVICE_ZONE).strftime(fmt) if moment else ""


def _check(code: object, store_id: int | None) -> tuple[dict, int]:
    """Validate a code at the user's store: the reply (as JSON fields) and its HTTP status, as the API's."""
    try:
        accepted = validate(cashier=_me(), code=code, store_id=store_id)
    except DomainError as refused:
        reply = {"result": "refused", "code": refused.code,
                 "message": str(MESSAGES.get(refused.code, refused.message))}
        used_at, where = refused.fields.get("used_at"), refused.fields.get("store_id")
        if used_at is not None:
            reply["used_at"] = used_at.astimezone(SERVICE_ZONE).isoformat()
            reply["used_at_local"] = _local(used_at)
        if where is not None:
            store = db.session.get(Store, where)
            reply["store_id"] = where
            reply["store_name"] = store.name if store else ""
        return reply, refused.http_status
    return {"result": "accepted", "code": "accepted", "message": str(MESSAGES["accepted"]),
            "title": accepted.title, "coupon_id": accepted.coupon_id, "store_id": accepted.store_id}, 200


def _today(store: Store) -> list[tuple[str, str, int]]:
    """(local time, campaign title, coupon id) of today's validations at the store (Asia/Shanghai day), latest first."""
    start = datetime.combine(utcnow().astimezone(SERVICE_ZONE).date(), time(), tzinfo=SERVICE_ZONE)
    rows = db.session.execute(
        select(Coupon.used_at, Campaign.title, Coupon.id).join(Campaign, Campaign.id == Coupon.campaign_id)
        .where(Coupon.used_store_id == store.id, Coupon.used_at >= start).order_by(Coupon.used_at.desc())).all()
    return [(_local(used_at, "%H:%M:%S"), title, coupon_id) for used_at, title, coupon_id in rows]


def _render(result: dict | None = None, status: int = 200):
    """The page: the scan field, the result (after a form post), today's list; an owner picks a store first."""
    user, store_id = _me(), _store_id_arg()
    stores = []
    if user.role == Role.merchant_owner:
        member = portal_membership(user)
        stores = db.session.scalars(select(Store).where(Store.merchant_id == member.merchant_id, Store.active)
                                    .order_by(Store.name)).all()
    try:
        store = counter_store(user, store_id)
    except InvalidInput:  # an owner who has not chosen a store yet
        store = None
    return render_template("campaigns/counter.html", store=store, stores=stores, result=result,
                           today=_today(store) if store else []), status


@bp.get("")
@staff_only
def page():
    """The counter page."""
    return _render()


@bp.post("")
@staff_only
def submit():
    """Without JavaScript: the form posts the code here and the page comes back with the result."""
    result, status = _check(request.form.get("code", ""), _store_id_arg())
    return _render(result, status)


@bp.post("/validate")
@staff_only
def validate_json():
    """The page's script: {code} in, the result as JSON, with the API's statuses."""
    body = request.get_json(silent=True)
    code = body.get("code") if isinstance(body, dict) else None
    result, status = _check(code, _store_id_arg())
    return jsonify(result), status
