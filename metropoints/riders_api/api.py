"""Rider and partner endpoints of API v1 (see the shared HTTP contract). Thin: parse, call an operation, reply."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, current_app, g, request

from metropoints.accrual import operations as accrual
from metropoints.accrual import queries
from metropoints.accrual.errors import InsufficientPoints, RefLinkedElsewhere, TooManyTrips
from metropoints.accrual.models import LedgerEntry, Partner, Trip
from metropoints.campaigns import catalogue
from metropoints.campaigns.models import Campaign
from metropoints.campaigns.schemas import CatalogItem
from metropoints.core import operations as core
from metropoints.core.api import bearer_value, idempotent, require_token
from metropoints.core.db import db
from metropoints.core.errors import DomainError, InvalidInput, InvalidToken, NotFound
from metropoints.core.extensions import limiter
from metropoints.core.models import Rider, Station, TokenKind
from metropoints.core.openapi import PAGE_QUERY, RATE_LIMITED, Param, Reply, api_operation
from metropoints.core.pages import keyset_page
from metropoints.core.replica import stale_ok
from metropoints.core.schemas import width
from metropoints.core.signin import check_api_code
from metropoints.core.timeutil import utcnow
from metropoints.core.twofactor import CodeNeeded, NotEnrolled
from metropoints.marketplace.errors import MerchantNotApproved, NotStaff
from metropoints.marketplace.models import Category, Merchant
from metropoints.marketplace.queries import portal_membership
from metropoints.redemption import operations as redemption
from metropoints.redemption import queries as redemption_queries
from metropoints.redemption.codes import qr_svg
from metropoints.redemption.errors import (
    AlreadyUsed,
    CouponCancelled,
    CouponExpired,
    LimitReached,
    NotCancellable,
    NotLive,
    OutOfStock,
    TooManyAttempts,
    UnknownCode,
    WrongMerchant,
    WrongStore,
)
from metropoints.redemption.models import Coupon, CouponStatus
from metropoints.riders_api import schemas as s
from metropoints.riders_api.spec import document_json

bp = Blueprint("riders_api", __name__, url_prefix="/api/v1")
# The hot paths, served by core.fastpath (the same views, without Flask's request machinery).
FAST_ENDPOINTS = ("riders_api.redeem", "riders_api.counter_validate")


def current_rider() -> Rider:
    """The rider of this request's token."""
    rider = db.session.get(Rider, g.api_token.subject_id)
    if rider is None:
        raise InvalidToken()
    return rider


@bp.get("/openapi.json")
@api_operation(replies={200: s.OpenApiDocument}, tag="meta")
def openapi():
    """This document: the OpenAPI document of everything under /api/v1, generated from the code."""
    return Response(document_json(current_app), mimetype="application/json")


@bp.post("/auth/register")
@api_operation(body=s.RegisterRequest, replies={201: s.RegisterReply}, errors=(core.PhoneTaken,), tag="riders")
def register(body: s.RegisterRequest):
    """Register a rider: create a rider account and return a first rider token."""
    rider = core.register_rider(phone=body.phone, password=body.password, display_name=body.display_name)
    token, _ = core.issue_token(kind=TokenKind.rider, subject_id=rider.id,
                                ttl=timedelta(days=current_app.config["RIDER_TOKEN_DAYS"]), label="register")
    return s.RegisterReply(rider_id=rider.id, token=token)


def _login_limit() -> str:
    """The login rate limit from the configuration."""
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.post("/auth/token")
@limiter.limit(_login_limit)
@api_operation(body=s.TokenRequest, replies={200: s.TokenReply}, errors=(core.BadCredentials, RATE_LIMITED),
               invalid=core.BadCredentials, tag="riders")
def token(body: s.TokenRequest):
    """Log in: exchange phone and password for a rider token; a body without them is bad credentials too, and
    hammering gets 429."""
    rider = core.authenticate_rider(phone=body.phone, password=body.password)
    raw, record = core.issue_token(kind=TokenKind.rider, subject_id=rider.id,
                                   ttl=timedelta(days=current_app.config["RIDER_TOKEN_DAYS"]), label="login")
    return s.TokenReply(token=raw, expires_at=record.expires_at)


@bp.post("/auth/logout")
@api_operation(token=TokenKind.rider, replies={204: Reply(description="Signed out: the token no longer works.")},
               tag="riders")
def logout():
    """Log out: revoke the rider token this request presents, from the next request on. Idempotent: a token already
    revoked or expired gets the same 204 and nothing changes."""
    core.log_out_token(raw=bearer_value(), kind=TokenKind.rider)
    return Response(status=204)


@bp.get("/me")
@require_token(TokenKind.rider)
@api_operation(replies={200: s.Me}, tag="riders")
def me():
    """The rider's balance, distance and CO2e saved (in all and per mode), and linked references."""
    rider = current_rider()
    by_mode = queries.rider_totals_by_mode(rider.id)
    return s.Me(rider_id=rider.id, display_name=rider.display_name, points_balance=rider.points_balance,
                km_total=s.km(sum(t.metres for t in by_mode.values())),
                co2e_grams_total=sum(t.co2e_grams for t in by_mode.values()),
                links=[s.Link(source=link.source, ref=link.ref) for link in queries.rider_links(rider.id)],
                by_mode=s.ByMode(**{mode.value: s.ModeFigures.of(totals) for mode, totals in by_mode.items()}))


@bp.post("/me/links")
@require_token(TokenKind.rider)
@api_operation(body=s.Link, replies={201: s.LinkReply}, errors=(RefLinkedElsewhere,), tag="riders")
def link(body: s.Link):
    """Link a metro account reference; trips held for it (30 days back at most) are credited at once. Linking a
    reference the rider already has changes nothing."""
    rider = current_rider()
    record, credited = accrual.link_rider_ref(rider=rider, source=body.source, ref=body.ref)
    db.session.refresh(rider)
    return s.LinkReply(source=record.source, ref=record.ref, held_trips_credited=credited,
                       points_balance=rider.points_balance)


@bp.get("/me/trips")
@require_token(TokenKind.rider)
@api_operation(replies={200: s.TripPage}, params=PAGE_QUERY, tag="riders")
def my_trips():
    """The rider's trips, newest first, in pages of `limit` items."""
    page = keyset_page(queries.rider_trips_query(current_rider().id), Trip.id, lambda row: s.TripItem.of(row[0]))
    return s.TripPage(**page)


@bp.get("/me/ledger")
@require_token(TokenKind.rider)
@api_operation(replies={200: s.LedgerPage}, params=PAGE_QUERY, tag="riders")
def my_ledger():
    """The rider's ledger, newest first, in pages of `limit` items; balance_after of the newest entry is the
    balance."""
    page = keyset_page(queries.rider_ledger_query(current_rider().id), LedgerEntry.id,
                       lambda row: s.LedgerItem.of(row[0]))
    return s.LedgerPage(**page)


@bp.post("/trips")
@require_token(TokenKind.partner)
@idempotent
# Text a database cannot store refuses its row only (as `malformed`), not the whole call.
@api_operation(body=s.TripsRequest, replies={200: s.TripsReply}, errors=(TooManyTrips,), check_text=False,
               tag="partners")
def post_trips(body: s.TripsRequest):
    """The partner trip feed: up to TRIPS_MAX_PER_CALL trips a call, credited in one batch. A row that is malformed
    or implausible is refused with its reason; the rest of the batch still counts. Trips already received count as
    duplicates and change nothing."""
    partner = db.session.get(Partner, g.api_token.subject_id)
    if partner is None:
        raise InvalidToken()
    result = accrual.receive_trips(partner=partner, payload={"trips": body.trips})
    return s.TripsReply.of(result)


def _catalog_filters() -> tuple[Category | None, str | None]:
    """`?category=` and `?station=`, checked: an unknown value is a 422 naming the parameter."""
    category, station = request.args.get("category") or None, request.args.get("station") or None
    if category is not None:
        try:
            category = Category(category)
        except ValueError:
            raise InvalidInput(f"category must be one of {', '.join(c.value for c in Category)}.",
                               field="category") from None
    # Not printable (a NUL, say) is no station_id either, and must not reach the database (where it is an error).
    if station is not None and (len(station) > width(Station.station_id) or not station.isprintable()
                                or db.session.get(Station, station) is None):
        raise InvalidInput("station must be a station_id of the network.", field="station")
    return category, station


CATALOG_QUERY = (Param("category", Category, "Only campaigns of this category."),
                 Param("station", s.StationId, "Only campaigns valid at a store near this station (a station_id)."),
                 *PAGE_QUERY)


@bp.get("/catalog")
@api_operation(replies={200: s.CatalogPage}, params=CATALOG_QUERY, tag="catalogue")
@stale_ok
def catalog():
    """The live catalogue: campaigns on sale now, newest first, in pages of `limit` items; optionally of one
    category, or valid near one station. Public."""
    category, station = _catalog_filters()
    page = keyset_page(catalogue.live_campaigns(category=category, station_id=station), Campaign.id, tuple)
    page["items"] = [CatalogItem.model_validate(item) for item in catalogue.catalog_items(page["items"])]
    return s.CatalogPage(**page)


@bp.get("/catalog/<id:campaign_id>")
@api_operation(replies={200: CatalogItem}, tag="catalogue")
@stale_ok
def catalog_item(campaign_id: int):
    """One live campaign; 404 `not_found` when it is not on sale now. Public."""
    campaign = catalogue.live_campaign(campaign_id)
    if campaign is None:
        raise NotFound("No live campaign with this id.")
    item = catalogue.catalog_items([(campaign, db.session.get(Merchant, campaign.merchant_id))])[0]
    return CatalogItem.model_validate(item)


# Redemption: riders buy coupons, list them, show them as QR codes and cancel unused ones.


@bp.post("/redemptions")
# A flash sale's hot path: the token from core.token_cache, and a campaign marked sold out refused before the token.
@require_token(TokenKind.rider, cached=True, before_token=lambda body: redemption.refuse_if_sold_out(body.campaign_id))
@idempotent
@api_operation(body=s.RedemptionRequest, replies={201: s.RedemptionReply},
               errors=(InsufficientPoints, OutOfStock, LimitReached, NotLive), tag="redemption")
def redeem(body: s.RedemptionRequest):
    """Redeem a campaign: buy one coupon of a live campaign with points; 409 says why not. The debit, the stock and
    the coupon are one transaction. A retry with the same Idempotency-Key gets the first coupon back. A campaign
    marked sold out is answered out_of_stock before the token is looked up (what the catalogue shows anyone; a
    request without a bearer token is still a 401), so a flash sale's sold-out replies cost no database work."""
    # The token names the rider; redeem() reads and locks the rider's row itself, so no ORM load here.
    result = redemption.redeem(rider_id=g.api_token.subject_id, campaign_id=body.campaign_id)
    return s.RedemptionReply(coupon_id=result.coupon_id, code=result.code, counter_code=result.counter_code,
                             points_spent=result.points_spent, balance_after=result.balance_after,
                             expires_at=result.expires_at)


def _coupon_status_filter() -> CouponStatus | None:
    """`?status=`, checked: an unknown value is a 422 naming the parameter."""
    raw = request.args.get("status") or None
    if raw is None:
        return None
    try:
        return CouponStatus(raw)
    except ValueError:
        raise InvalidInput(f"status must be one of {', '.join(status.value for status in CouponStatus)}.",
                           field="status") from None


@bp.get("/me/coupons")
@require_token(TokenKind.rider)
@api_operation(replies={200: s.CouponPage}, tag="redemption",
               params=(Param("status", CouponStatus, "Only coupons in this status, as the rider sees it."),
                       *PAGE_QUERY))
def my_coupons():
    """The rider's coupons, newest first, in pages of `limit` items; an issued coupon past its validity shows as
    expired."""
    now = utcnow()

    def item(row) -> s.CouponItem:
        coupon: Coupon = row[0]
        return s.CouponItem.of(coupon, row[1], redemption.effective_status(coupon, now))

    query = redemption_queries.rider_coupons_query(current_rider().id, _coupon_status_filter(), now)
    return s.CouponPage(**keyset_page(query, Coupon.id, item))


@bp.get("/me/coupons/<id:coupon_id>/qr.svg")
@require_token(TokenKind.rider)
@api_operation(replies={200: Reply(description="The QR code.", media_type="image/svg+xml")},
               errors=(CouponCancelled,), tag="redemption")
def coupon_qr(coupon_id: int):
    """A coupon's QR code: its code as an SVG image, for the counter to scan, with its counter code written 4-4-4
    under it; 404 for another rider's coupon, 410 `cancelled` for a cancelled one (used and expired ones are still
    shown, as a wallet keeps them)."""
    coupon = redemption.coupon_for_qr(rider_id=current_rider().id, coupon_id=coupon_id)
    response = Response(qr_svg(coupon.code, coupon.counter_code), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.post("/me/coupons/<id:coupon_id>/cancel")
@require_token(TokenKind.rider)
@idempotent
@api_operation(replies={200: s.CancelReply}, errors=(NotCancellable,), tag="redemption")
def cancel_coupon(coupon_id: int):
    """Cancel a coupon: an unused one still within its validity; the points and the stock come back, once. An expired
    coupon refunds nothing."""
    refund = redemption.cancel(rider_id=current_rider().id, coupon_id=coupon_id)
    return s.CancelReply(coupon_id=refund.coupon_id, points_refunded=refund.points_refunded,
                         balance_after=refund.balance_after)


# Counter (POS): staff log in with their portal account and validate coupons.

STAFF_LOGIN_REFUSED = "Wrong e-mail or password."


@bp.post("/staff/token")
@limiter.limit(_login_limit)
@api_operation(body=s.StaffTokenRequest, replies={200: s.StaffTokenReply},
               errors=(core.BadCredentials, CodeNeeded, NotEnrolled, RATE_LIMITED),
               invalid=core.BadCredentials, invalid_message=STAFF_LOGIN_REFUSED, tag="counter")
def staff_token(body: s.StaffTokenRequest):
    """Staff log in (POS): exchange a cashier's or merchant owner's e-mail and password, and `otp` where the account
    has a second factor, for a staff token; hammering gets 429, and a code counts against the portal's code limit.
    Only active staff of an approved merchant get one."""
    user = core.authenticate_user(email=body.email, password=body.password)
    try:
        portal_membership(user)
    except DomainError:
        raise core.BadCredentials(STAFF_LOGIN_REFUSED) from None
    check_api_code(user=user, code=body.otp)
    raw, record = core.issue_token(kind=TokenKind.staff, subject_id=user.id,
                                   ttl=timedelta(hours=current_app.config.get("STAFF_TOKEN_HOURS", 12)),
                                   label="pos")
    return s.StaffTokenReply(token=raw, expires_at=record.expires_at)


@bp.post("/counter/validate")
@require_token(TokenKind.staff, cached=True)  # the counter's hot path: core.token_cache
@api_operation(body=s.ValidateRequest, replies={200: s.ValidateReply}, tag="counter",
               errors=(WrongMerchant, WrongStore, NotStaff, MerchantNotApproved, UnknownCode, AlreadyUsed,
                       CouponExpired, CouponCancelled, TooManyAttempts))
def counter_validate(body: s.ValidateRequest):
    """Use a coupon at the counter, at the staff member's store, by the text of its QR or its 12-digit counter code:
    accepted at most once, only at a store of its campaign, only while valid; 409/410/403/404 say why not, and 429
    `too_many_attempts` (with `until`) refuses a store whose counter was sent too many unknown codes lately."""
    # By the token's user id: validate() checks the account and its place at the merchant in its own first query.
    accepted = redemption.validate(cashier=g.api_token.subject_id, code=body.code, store_id=body.store_id)
    return s.ValidateReply(result="accepted", coupon_id=accepted.coupon_id, title=accepted.title,
                           rider_display_name=accepted.rider_display_name, store_id=accepted.store_id)
