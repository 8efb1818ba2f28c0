"""Rider and partner endpoints of API v1 (see the shared HTTP contract). Thin: parse, call an operation, reply."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, current_app, g, jsonify, request

from metropoints.accrual import operations as accrual
from metropoints.accrual import queries
from metropoints.accrual.models import LedgerEntry, Partner, Trip
from metropoints.campaigns import catalogue
from metropoints.campaigns.models import Campaign
from metropoints.core import operations as core
from metropoints.core.api import idempotent, json_body, keyset_page, require_token
from metropoints.core.db import db
from metropoints.core.errors import DomainError, InvalidInput, InvalidToken, NotFound
from metropoints.core.extensions import limiter
from metropoints.core.models import Rider, Station, TokenKind
from metropoints.core.timeutil import isoformat, utcnow
from metropoints.marketplace.models import Category, Merchant
from metropoints.marketplace.queries import portal_membership
from metropoints.redemption import operations as redemption
from metropoints.redemption import queries as redemption_queries
from metropoints.redemption.codes import qr_svg
from metropoints.redemption.models import Coupon, CouponStatus
from metropoints.riders_api.openapi import openapi_document

bp = Blueprint("riders_api", __name__, url_prefix="/api/v1")


def current_rider() -> Rider:
    """The rider of this request's token."""
    rider = db.session.get(Rider, g.api_token.subject_id)
    if rider is None:
        raise InvalidToken()
    return rider


def km(metres: int) -> float:
    """Metres as km with 3 decimals."""
    return round(metres / 1000, 3)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of everything under /api/v1."""
    return jsonify(openapi_document())


@bp.post("/auth/register")
def register():
    """Create a rider account and return a first token."""
    body = json_body()
    rider = core.register_rider(phone=body.get("phone"), password=body.get("password"),
                                display_name=body.get("display_name"))
    token, _ = core.issue_token(kind=TokenKind.rider, subject_id=rider.id,
                                ttl=timedelta(days=current_app.config["RIDER_TOKEN_DAYS"]), label="register")
    return jsonify({"rider_id": rider.id, "token": token}), 201


def _login_limit() -> str:
    """The login rate limit from the configuration."""
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.post("/auth/token")
@limiter.limit(_login_limit)
def token():
    """Exchange phone and password for a rider token; hammering gets 429."""
    body = json_body()
    rider = core.authenticate_rider(phone=body.get("phone"), password=body.get("password"))
    raw, record = core.issue_token(kind=TokenKind.rider, subject_id=rider.id,
                                   ttl=timedelta(days=current_app.config["RIDER_TOKEN_DAYS"]), label="login")
    return jsonify({"token": raw, "expires_at": isoformat(record.expires_at)})


@bp.get("/me")
@require_token(TokenKind.rider)
def me():
    """The rider's balance, distance and CO2e saved, and linked references."""
    rider = current_rider()
    metres, grams = queries.rider_totals(rider.id)
    return jsonify({
        "rider_id": rider.id, "display_name": rider.display_name, "points_balance": rider.points_balance,
        "km_total": km(metres), "co2e_grams_total": grams,
        "links": [{"source": link.source, "ref": link.ref} for link in queries.rider_links(rider.id)],
    })


@bp.post("/me/links")
@require_token(TokenKind.rider)
def link():
    """Link a metro account reference; trips held for it are credited at once."""
    body = json_body()
    rider = current_rider()
    record, credited = accrual.link_rider_ref(rider=rider, source=body.get("source"), ref=body.get("ref"))
    db.session.refresh(rider)
    return jsonify({"source": record.source, "ref": record.ref, "held_trips_credited": credited,
                    "points_balance": rider.points_balance}), 201


def trip_item(row) -> dict:
    """A trip as the contract shows it."""
    trip: Trip = row[0]
    return {"trip_id": trip.trip_id, "source": trip.source, "entry_station": trip.entry_station,
            "exit_station": trip.exit_station, "entered_at": isoformat(trip.entered_at),
            "exited_at": isoformat(trip.exited_at), "km": km(trip.distance_m), "points": trip.points,
            "co2e_grams": trip.co2e_grams, "status": trip.status.value, "rule_version": trip.rule_version_id}


@bp.get("/me/trips")
@require_token(TokenKind.rider)
def my_trips():
    """The rider's trips, newest first."""
    return jsonify(keyset_page(queries.rider_trips_query(current_rider().id), Trip.id, trip_item))


def ledger_item(row) -> dict:
    """A ledger entry as the contract shows it."""
    entry: LedgerEntry = row[0]
    return {"entry_id": entry.id, "at": isoformat(entry.at), "points": entry.points, "kind": entry.kind.value,
            "ref": entry.ref, "reason": entry.reason, "balance_after": entry.balance_after}


@bp.get("/me/ledger")
@require_token(TokenKind.rider)
def my_ledger():
    """The rider's ledger, newest first; balance_after of the newest entry is the balance."""
    return jsonify(keyset_page(queries.rider_ledger_query(current_rider().id), LedgerEntry.id, ledger_item))


@bp.post("/trips")
@require_token(TokenKind.partner)
@idempotent
def post_trips():
    """The partner trip feed: up to 10,000 trips a call; bad rows are refused with reasons, the rest count."""
    partner = db.session.get(Partner, g.api_token.subject_id)
    if partner is None:
        raise InvalidToken()
    # Text a database cannot store refuses its row only (as `malformed`), not the whole call.
    result = accrual.receive_trips(partner=partner, payload=json_body(check_text=False))
    return jsonify(result.as_reply())


def _catalog_filters() -> tuple[Category | None, str | None]:
    """`?category=` and `?station=`, checked: an unknown value is a 422 naming the parameter."""
    category, station = request.args.get("category") or None, request.args.get("station") or None
    if category is not None:
        try:
            category = Category(category)
        except ValueError:
            raise InvalidInput(f"category must be one of {', '.join(c.value for c in Category)}.",
                               field="category") from None
    if station is not None and (len(station) > 8 or db.session.get(Station, station) is None):
        raise InvalidInput("station must be a station_id of the network.", field="station")
    return category, station


@bp.get("/catalog")
def catalog():
    """The live catalogue, newest campaign first, optionally of one category or valid near one station. Public."""
    category, station = _catalog_filters()
    page = keyset_page(catalogue.live_campaigns(category=category, station_id=station), Campaign.id, tuple)
    page["items"] = catalogue.catalog_items(page["items"])
    return jsonify(page)


@bp.get("/catalog/<int:campaign_id>")
def catalog_item(campaign_id: int):
    """One live campaign; 404 `not_found` when it is not on sale now. Public."""
    campaign = catalogue.live_campaign(campaign_id)
    if campaign is None:
        raise NotFound("No live campaign with this id.")
    return jsonify(catalogue.catalog_items([(campaign, db.session.get(Merchant, campaign.merchant_id))])[0])


# Redemption: riders buy coupons, list them, show them as QR codes and cancel unused ones.


@bp.post("/redemptions")
@require_token(TokenKind.rider)
@idempotent
def redeem():
    """Buy a coupon of a live campaign with points; 409 says why not. A retry with the same Idempotency-Key gets the
    first coupon back."""
    body = json_body()
    # The token names the rider; redeem() reads and locks the rider's row itself, so no ORM load here.
    result = redemption.redeem(rider_id=g.api_token.subject_id, campaign_id=body.get("campaign_id"))
    return jsonify({"coupon_id": result.coupon_id, "code": result.code, "points_spent": result.points_spent,
                    "balance_after": result.balance_after, "expires_at": isoformat(result.expires_at)}), 201


def _coupon_status_filter() -> CouponStatus | None:
    """`?status=`, checked: an unknown value is a 422 naming the parameter."""
    raw = request.args.get("status") or None
    if raw is None:
        return None
    try:
        return CouponStatus(raw)
    except ValueError:
        raise InvalidInput(f"status must be one of {', '.join(s.value for s in CouponStatus)}.",
                           field="status") from None


@bp.get("/me/coupons")
@require_token(TokenKind.rider)
def my_coupons():
    """The rider's coupons, newest first; an issued coupon past its validity shows as expired."""
    now = utcnow()

    def item(row) -> dict:
        coupon: Coupon = row[0]
        return {"coupon_id": coupon.id, "campaign_id": coupon.campaign_id, "title": row[1],
                "status": redemption.effective_status(coupon, now).value, "code": coupon.code,
                "issued_at": isoformat(coupon.issued_at), "expires_at": isoformat(coupon.expires_at),
                "used_at": isoformat(coupon.used_at), "points_spent": coupon.points_spent}

    query = redemption_queries.rider_coupons_query(current_rider().id, _coupon_status_filter(), now)
    return jsonify(keyset_page(query, Coupon.id, item))


@bp.get("/me/coupons/<int:coupon_id>/qr.svg")
@require_token(TokenKind.rider)
def coupon_qr(coupon_id: int):
    """The coupon's code as a QR code (SVG), for the counter to scan; 404 for another rider's coupon."""
    coupon = redemption.rider_coupon(rider_id=current_rider().id, coupon_id=coupon_id)
    response = Response(qr_svg(coupon.code), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.post("/me/coupons/<int:coupon_id>/cancel")
@require_token(TokenKind.rider)
@idempotent
def cancel_coupon(coupon_id: int):
    """Cancel an unused coupon still within its validity: the points and the stock come back, once."""
    refund = redemption.cancel(rider_id=current_rider().id, coupon_id=coupon_id)
    return jsonify({"coupon_id": refund.coupon_id, "points_refunded": refund.points_refunded,
                    "balance_after": refund.balance_after})


# Counter (POS): staff log in with their portal account and validate coupons.


@bp.post("/staff/token")
@limiter.limit(_login_limit)
def staff_token():
    """Exchange a cashier's or merchant owner's e-mail and password for a staff token (for a POS); hammering gets
    429. Only active staff of an approved merchant get one."""
    body = json_body()
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        raise core.BadCredentials("Wrong e-mail or password.")
    user = core.authenticate_user(email=email, password=password)
    try:
        portal_membership(user)
    except DomainError:
        raise core.BadCredentials("Wrong e-mail or password.") from None
    raw, record = core.issue_token(kind=TokenKind.staff, subject_id=user.id,
                                   ttl=timedelta(hours=current_app.config.get("STAFF_TOKEN_HOURS", 12)),
                                   label="pos")
    return jsonify({"token": raw, "expires_at": isoformat(record.expires_at)})


@bp.post("/counter/validate")
@require_token(TokenKind.staff)
def counter_validate():
    """Use a coupon at the staff member's store: accepted once; 409/410/403/404 say why not."""
    body = json_body()
    # By the token's user id: validate() checks the account and its place at the merchant in its own first query.
    accepted = redemption.validate(cashier=g.api_token.subject_id, code=body.get("code"),
                                   store_id=body.get("store_id"))
    return jsonify({"result": "accepted", "coupon_id": accepted.coupon_id, "title": accepted.title,
                    "rider_display_name": accepted.rider_display_name, "store_id": accepted.store_id})
