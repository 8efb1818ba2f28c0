"""The OpenAPI 3.1 document of API v1, served at GET /api/v1/openapi.json.

It describes exactly the endpoints `metropoints.riders_api.api` serves today; add an operation here when one is added
there (a test compares DOCUMENTED_PATHS with the app's URL map). The document is built once and every caller gets its
own deep copy, so nobody can change the cached one.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

PREFIX = "/api/v1"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

TRIP_STATUSES = ["credited", "capped", "held"]
REFUSAL_REASONS = ["malformed", "unknown_station", "station_not_open", "same_station", "bad_times", "too_old",
                   "in_future", "implausible_speed"]
LEDGER_KINDS = ["trip", "redemption", "refund", "expiry", "adjustment"]
TOKEN_KINDS = ["rider", "partner", "kiosk", "staff"]
CATEGORIES = ["dining", "shopping", "entertainment", "leisure"]
BENEFIT_TYPES = ["voucher", "discount", "free_item"]
COUPON_STATUSES = ["issued", "used", "expired", "cancelled"]
COUPON_CODE_PATTERN = r"^[A-Z2-7]{26}\.[A-Z2-7]{16}$"
SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,31}$"
PHONE_PATTERN = r"^\+?[0-9]{6,15}$"
MAX_TRIPS_PER_CALL = 10_000

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Schema], required: list[str] | None = None, description: str = "") -> Schema:
    """An object schema; every property is required unless `required` says otherwise."""
    schema: Schema = {"type": "object", "properties": properties,
                      "required": list(properties) if required is None else required}
    if description:
        schema["description"] = description
    return schema


def _str(description: str = "", **extra: Any) -> Schema:
    """A string schema."""
    return {"type": "string", **({"description": description} if description else {}), **extra}


def _int(description: str = "", **extra: Any) -> Schema:
    """An integer schema."""
    return {"type": "integer", **({"description": description} if description else {}), **extra}


def _time(description: str) -> Schema:
    """A time: ISO 8601 / RFC 3339 with an offset."""
    return {"type": "string", "format": "date-time", "description": f"{description} (ISO 8601 with offset)."}


def _km(description: str) -> Schema:
    """A distance in km, rounded to 3 decimals."""
    return {"type": "number", "minimum": 0, "description": f"{description}, in km with 3 decimals.",
            "x-decimals": 3}


def _json(schema: Schema, description: str) -> dict[str, Any]:
    """A JSON response (or request body) with `schema`."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, *codes: str) -> dict[str, Any]:
    """An error response whose `error.code` is one of `codes`."""
    schema = {"allOf": [_ref("Error"), {"type": "object", "properties": {
        "error": {"type": "object", "properties": {"code": {"type": "string", "enum": list(codes)}}}}}]}
    response = _json(schema, f"{description} (`{'` / `'.join(codes)}`).")
    response["x-error-codes"] = list(codes)
    return response


def _page(item_schema: str) -> Schema:
    """A cursor page of `item_schema` items, newest first."""
    return _obj({"items": {"type": "array", "items": _ref(item_schema)},
                 "next_cursor": {"type": ["string", "null"],
                                 "description": "Pass as `cursor` for the next page; null on the last page."}},
                description="A page of a list, newest first.")


def _body(schema: Schema, description: str) -> dict[str, Any]:
    """A required JSON request body."""
    return {"required": True, **_json(schema, description)}


MALFORMED = ("400", "The body is not a JSON object, or has text no database can store (NUL, lone surrogates)",
             "malformed_json")
INVALID = ("422", "A field is missing, malformed or out of range; `field` names it", "invalid")


def _operation(operation_id: str, summary: str, description: str, token_kind: str | None,
               responses: dict[str, dict[str, Any]], *errors: tuple[str, str, str],
               body: dict[str, Any] | None = None, parameters: list[Schema] | None = None,
               tag: str = "riders") -> dict[str, Any]:
    """One operation: its token kind (or none), body, parameters, success responses and error responses.

    `errors` are (status, description, code) triples; triples with the same status share one response.
    """
    if token_kind is None:
        needs = "No token needed."
        security: list[dict[str, list[str]]] = []
        codes: list[tuple[str, str, str]] = []
    else:
        needs = f"Needs a **{token_kind}** token (`Authorization: Bearer <token>`)."
        security = [{"bearerAuth": []}]
        codes = [("401", "No bearer token, or one that is unknown, expired or revoked", "unauthorized"),
                 ("401", "No bearer token, or one that is unknown, expired or revoked", "invalid_token"),
                 ("403", f"A live token of another kind than {token_kind}", "forbidden")]
    grouped: dict[str, tuple[str, list[str]]] = {}
    for status, text, code in [*errors, *codes]:
        grouped.setdefault(status, (text, []))[1].append(code)
    all_responses = dict(responses)
    for status in sorted(grouped):
        text, status_codes = grouped[status]
        all_responses[status] = _error(text, *status_codes)
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag],
                                 "description": f"{description}\n\n{needs}", "x-token-kind": token_kind,
                                 "security": security, "responses": all_responses}
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def _schemas() -> dict[str, Schema]:
    """The shared component schemas."""
    station = _str("A station_id from shared/data/shenyang_metro/stations.csv.", maxLength=8)
    source = _str("The metro account system, e.g. `shenyang_metro`.", pattern=SOURCE_PATTERN)
    return {
        "Error": _obj({"error": _obj({
            "code": _str("Machine-readable reason, snake_case.", pattern="^[a-z][a-z0-9_]*$"),
            "message": _str("Human-readable text."),
        }, description="The code and message, plus any fields that help (e.g. `field`, `limit`, `used_at`).")
            | {"additionalProperties": True}}, description="Every 4xx reply."),
        "RegisterRequest": _obj({
            "phone": _str("The login: 6 to 15 digits, optionally a leading `+`.", pattern=PHONE_PATTERN),
            "password": _str("8 to 200 characters.", minLength=8, maxLength=200),
            "display_name": _str("1 to 64 characters; defaults to `rider-` and the phone's last 4 digits.",
                                 minLength=1, maxLength=64),
        }, required=["phone", "password"]),
        "RegisterReply": _obj({"rider_id": _int(), "token": _str("A rider token.")}),
        "TokenRequest": _obj({"phone": _str(), "password": _str()}),
        "TokenReply": _obj({"token": _str("A rider token."), "expires_at": _time("When the token stops working")}),
        "Link": _obj({"source": source, "ref": _str("The rider's account reference in that system.", minLength=1,
                                                    maxLength=64)}),
        "LinkReply": _obj({"source": source, "ref": _str(maxLength=64),
                           "held_trips_credited": _int("Trips held for this reference and credited now.", minimum=0),
                           "points_balance": _int("The balance after crediting them.")}),
        "Me": _obj({"rider_id": _int(), "display_name": _str(), "points_balance": _int("Points."),
                    "km_total": _km("Distance of all credited and capped trips"),
                    "co2e_grams_total": _int("CO2e saved, in grams.", minimum=0),
                    "links": {"type": "array", "items": _ref("Link")}}),
        "TripStatus": _str("`credited`: earned its points; `capped`: earned less, or nothing, because of the daily "
                           "cap; `held`: nobody has linked its rider reference yet.", enum=TRIP_STATUSES),
        "Trip": _obj({"trip_id": _str(maxLength=64), "source": source, "entry_station": station,
                      "exit_station": station, "entered_at": _time("Entry"), "exited_at": _time("Exit"),
                      "km": _km("Network distance between the stations"), "points": _int("Points earned.", minimum=0),
                      "co2e_grams": _int("CO2e saved, in grams.", minimum=0), "status": _ref("TripStatus"),
                      "rule_version": _int("Id of the earning rule version in force at the exit.")}),
        "LedgerKind": _str("Why the entry exists.", enum=LEDGER_KINDS),
        "LedgerEntry": _obj({"entry_id": _int(), "at": _time("When it was posted"),
                             "points": _int("Signed: credits positive, debits negative."),
                             "kind": _ref("LedgerKind"),
                             "ref": _str("What it is about: `source:trip_id`, a coupon id, an expiry year, ..."),
                             "reason": _str("An operator's reason (adjustments); otherwise empty."),
                             "balance_after": _int("The balance after this entry.")}),
        "TripIn": _obj({"trip_id": _str("Unique per source.", minLength=1, maxLength=64), "source": source,
                        "rider_ref": _str("The rider's account reference in `source`.", minLength=1, maxLength=64),
                        "entry_station": station, "exit_station": station,
                        "entered_at": _time("Entry"), "exited_at": _time("Exit; at most 30 days ago and 5 minutes "
                                                                         "ahead")},
                       description="One trip. A row that breaks this shape is refused with a reason, not the call."),
        "TripsRequest": _obj({"trips": {"type": "array", "maxItems": MAX_TRIPS_PER_CALL, "items": _ref("TripIn")}}),
        "RefusalReason": _str("Why a row was refused.", enum=REFUSAL_REASONS),
        "Rejected": _obj({"trip_id": _str("As given (may be empty when missing)."), "reason": _ref("RefusalReason"),
                          "line": _int("1-based position of the row in `trips`.", minimum=1)}),
        "TripsReply": _obj({
            "credited": _int("New trips of linked riders, credited in full.", minimum=0),
            "duplicates": _int("Trips already received (same source and trip_id), changed nothing.", minimum=0),
            "held": _int("New trips whose rider_ref nobody has linked yet.", minimum=0),
            "capped": _int("Beyond the contract: new trips of linked riders accepted but cut by the daily cap.",
                           minimum=0),
            "rejected": {"type": "array", "items": _ref("Rejected")},
        }, description="The counts and the refused rows add up to the rows given."),
        "Category": _str("What a campaign offers.", enum=CATEGORIES),
        "CatalogStore": _obj({"store_id": _int(), "name": _str(), "address": _str(), "station_id": station},
                             description="A store where the coupon can be used, near a metro station."),
        "CatalogItem": _obj({
            "campaign_id": _int(),
            "merchant": _obj({"merchant_id": _int(), "name": _str()}),
            "title": _str(maxLength=80),
            "category": _ref("Category"),
            "point_price": _int("Points a coupon costs.", minimum=1),
            "stock_left": _int("Coupons left to sell (always at least 1 for a live campaign).", minimum=1),
            "per_rider_limit": _int("Coupons one rider may hold from this campaign.", minimum=1),
            "valid_from": _time("Start of the sale"),
            "valid_until": _time("End of the sale (exclusive)"),
            "stores": {"type": "array", "items": _ref("CatalogStore")},
            "benefit_type": _str("Beyond the contract: what the rider gets.", enum=BENEFIT_TYPES),
            "face_value_fen": {"type": ["integer", "null"], "description": "Beyond the contract: a cash voucher's "
                               "value in fen; null for other benefits."},
            "discount_percent": {"type": ["integer", "null"], "description": "Beyond the contract: a discount's "
                                 "percentage; null for other benefits."},
            "description": _str("Beyond the contract."),
            "terms": _str("Beyond the contract: conditions of use."),
            "coupon_valid_days": _int("Beyond the contract: days a coupon stays valid after redemption.", minimum=1),
            "image_url": {"type": ["string", "null"], "description": "Beyond the contract: the campaign's image "
                          "(a path on this server), or null."},
        }, required=["campaign_id", "merchant", "title", "category", "point_price", "stock_left", "per_rider_limit",
                     "valid_from", "valid_until", "stores"],
            description="A live campaign: approved, within its sale window, with stock left, of an approved "
                        "merchant."),
        **_coupon_schemas(),
    }


def _coupon_schemas() -> dict[str, Schema]:
    """The component schemas of redemption and the counter."""
    code = _str("The text inside the coupon's QR code: a random part and its signature.",
                pattern=COUPON_CODE_PATTERN)
    return {
        "RedemptionRequest": _obj({"campaign_id": _int("A live campaign.", minimum=1)}),
        "RedemptionReply": _obj({
            "coupon_id": _int(), "code": code, "points_spent": _int("The campaign's point price.", minimum=1),
            "balance_after": _int("The rider's balance after the debit.", minimum=0),
            "expires_at": _time("End of the coupon's validity")}),
        "CouponStatus": _str("`expired` also for an issued coupon past its validity that the expiry job has not "
                             "marked yet.", enum=COUPON_STATUSES),
        "Coupon": _obj({
            "coupon_id": _int(), "campaign_id": _int(), "title": _str(maxLength=80), "status": _ref("CouponStatus"),
            "code": code, "issued_at": _time("When it was bought"), "expires_at": _time("End of its validity"),
            "used_at": {"type": ["string", "null"], "format": "date-time",
                        "description": "When it was used at a counter (ISO 8601 with offset); null if not."},
            "points_spent": _int("Beyond the contract: the points it cost.", minimum=1)},
            description="A coupon the rider bought."),
        "CancelReply": _obj({
            "coupon_id": _int("Beyond the contract: the coupon cancelled."),
            "points_refunded": _int("Points given back.", minimum=1),
            "balance_after": _int("The rider's balance after the refund.", minimum=0)}),
        "StaffTokenRequest": _obj({"email": _str(), "password": _str()}),
        "StaffTokenReply": _obj({"token": _str("A staff token."),
                                 "expires_at": _time("Beyond the contract: when the token stops working")},
                                required=["token"]),
        "ValidateRequest": _obj({
            "code": _str("The text inside the coupon's QR code, as scanned."),
            "store_id": _int("Beyond the contract: for a merchant owner, the store of theirs the coupon is used at "
                             "(required for owners); a cashier always validates for their own store.", minimum=1)},
            required=["code"]),
        "ValidateReply": _obj({
            "result": _str("Always `accepted`: the coupon is now used.", enum=["accepted"]),
            "coupon_id": _int(), "title": _str(maxLength=80), "rider_display_name": _str(),
            "store_id": _int("Beyond the contract: the store it was used at.")},
            required=["result", "coupon_id", "title", "rider_display_name"]),
    }


def _parameters() -> dict[str, Schema]:
    """The shared parameters."""
    return {
        "Limit": {"name": "limit", "in": "query", "required": False, "description": "Items per page.",
                  "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
        "Cursor": {"name": "cursor", "in": "query", "required": False,
                   "description": "The `next_cursor` of the previous page; omit for the first page.",
                   "schema": {"type": "string"}},
        "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "required": False,
                           "description": "A repeat with the same key and the same request returns the first reply "
                                          "(with `Idempotent-Replayed: true`) and changes nothing; the same key with "
                                          "another request is a 409 `idempotency_key_reused`. A refused request "
                                          "does not use up its key.",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255}},
        "Category": {"name": "category", "in": "query", "required": False,
                     "description": "Only campaigns of this category.", "schema": _ref("Category")},
        "Station": {"name": "station", "in": "query", "required": False,
                    "description": "Only campaigns valid at a store near this station (a station_id).",
                    "schema": {"type": "string", "maxLength": 8}},
        "CampaignId": {"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        "CouponId": {"name": "coupon_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        "CouponStatus": {"name": "status", "in": "query", "required": False,
                         "description": "Only coupons in this status, as the rider sees it.",
                         "schema": _ref("CouponStatus")},
    }


def _param(name: str) -> Schema:
    """A reference to a component parameter."""
    return {"$ref": f"#/components/parameters/{name}"}


def _list_operation(operation_id: str, summary: str, item_schema: str) -> dict[str, Any]:
    """A rider's cursor-paged list."""
    return _operation(operation_id, summary, f"{summary}, newest first, in pages of `limit` items.", "rider",
                      {"200": _json(_page(item_schema), "A page.")},
                      ("422", "`limit` out of range, or a cursor we did not make", "invalid"),
                      parameters=[_param("Limit"), _param("Cursor")])


def _paths() -> dict[str, dict[str, Any]]:
    """Every path of API v1 served today, relative to the server url."""
    return {
        "/openapi.json": {"get": _operation(
            "getOpenapi", "This document", "The OpenAPI document of everything under /api/v1.", None,
            {"200": _json({"type": "object"}, "An OpenAPI 3.1 document.")}, tag="meta")},
        "/auth/register": {"post": _operation(
            "register", "Register a rider", "Create a rider account and return a first rider token.", None,
            {"201": _json(_ref("RegisterReply"), "Registered.")},
            MALFORMED, ("409", "A rider with this phone exists", "phone_taken"), INVALID,
            body=_body(_ref("RegisterRequest"), "The new account."))},
        "/auth/token": {"post": _operation(
            "getToken", "Log in", "Exchange phone and password for a rider token. Too many attempts get 429.", None,
            {"200": _json(_ref("TokenReply"), "A new rider token.")},
            MALFORMED, ("401", "Wrong phone number or password", "bad_credentials"),
            ("429", "Too many attempts; wait and retry", "rate_limited"),
            body=_body(_ref("TokenRequest"), "The rider's credentials."))},
        "/me": {"get": _operation(
            "getMe", "The rider", "The rider's balance, distance and CO2e saved, and linked references.", "rider",
            {"200": _json(_ref("Me"), "The rider.")})},
        "/me/links": {"post": _operation(
            "linkRef", "Link a metro account",
            "Link a metro account reference; trips held for it (30 days back at most) are credited at once. "
            "Linking a reference the rider already has changes nothing.", "rider",
            {"201": _json(_ref("LinkReply"), "Linked.")},
            MALFORMED, ("409", "The reference is linked to another rider", "ref_linked_elsewhere"), INVALID,
            body=_body(_ref("Link"), "The reference to link."))},
        "/me/trips": {"get": _list_operation("listMyTrips", "The rider's trips", "Trip")},
        "/me/ledger": {"get": _list_operation("listMyLedger", "The rider's ledger", "LedgerEntry")},
        "/trips": {"post": _operation(
            "postTrips", "Partner trip feed",
            f"Up to {MAX_TRIPS_PER_CALL:,} trips a call, credited in one batch. A row that is malformed or "
            "implausible is refused with its reason; the rest of the batch still counts. Trips already received "
            "count as duplicates and change nothing.", "partner",
            {"200": _json(_ref("TripsReply"), "What became of each row.")},
            MALFORMED, ("409", "The Idempotency-Key was used for another request", "idempotency_key_reused"),
            ("413", "More trips than one call takes; `limit` says how many", "too_many_trips"),
            ("422", 'The body is not `{"trips": [...]}`, or the Idempotency-Key is too long or not printable',
             "invalid"),
            body=_body(_ref("TripsRequest"), "The trips."), parameters=[_param("IdempotencyKey")],
            tag="partners")},
        "/catalog": {"get": _operation(
            "listCatalog", "The live catalogue",
            "Campaigns on sale now (approved, within their sale window, with stock left, of an approved merchant), "
            "newest first, in pages of `limit` items; optionally of one category, or valid near one station.", None,
            {"200": _json(_page("CatalogItem"), "A page.")},
            ("422", "`category` or `station` unknown, `limit` out of range, or a cursor we did not make", "invalid"),
            parameters=[_param("Category"), _param("Station"), _param("Limit"), _param("Cursor")], tag="catalogue")},
        "/catalog/{campaign_id}": {"get": _operation(
            "getCatalogItem", "One live campaign", "One campaign of the live catalogue.", None,
            {"200": _json(_ref("CatalogItem"), "The campaign.")},
            ("404", "No such campaign, or it is not on sale now", "not_found"),
            parameters=[_param("CampaignId")], tag="catalogue")},
        "/kiosk/feed": {"get": _operation(
            "getKioskFeed", "A station kiosk's feed",
            "What a station kiosk shows: its station, the live campaigns featured at that station (most recently "
            "featured first), the live catalogue (newest first, at most 100 items) and the city's figures. The reply "
            "has a weak `ETag` computed over everything but `generated_at`, so it changes when the catalogue, the "
            "station's features or the city's figures change, and only then; `Cache-Control: private, no-cache`. "
            "A request whose `If-None-Match` holds the current tag gets 304 with no body.", "kiosk",
            {"200": _json(_obj({
                "station": _obj({"station_id": _str("The kiosk's station.", maxLength=8), "name_zh": _str(),
                                 "name_en": _str()}),
                "generated_at": _time("When this reply was made (not part of the ETag)"),
                "featured": {"type": "array", "items": _ref("CatalogItem"),
                             "description": "Live campaigns featured at this station, most recently featured first."},
                "catalog": {"type": "array", "items": _ref("CatalogItem"), "maxItems": 100,
                            "description": "The live catalogue, newest first."},
                "city": _obj({
                    "riders_total": _int("Registered riders.", minimum=0),
                    "co2e_tonnes_total": {"type": "number", "minimum": 0, "x-decimals": 1,
                                          "description": "CO2e saved by credited and capped trips, in tonnes "
                                                         "with 1 decimal."},
                    "points_total": _int("Points credited for trips.", minimum=0),
                }),
            }), "The feed.") | {"headers": {"ETag": {"description": "Weak tag of the feed's content.",
                                                     "schema": {"type": "string"}}}},
             "304": {"description": "Unchanged since the tag in `If-None-Match`; no body.",
                     "headers": {"ETag": {"description": "The same tag.", "schema": {"type": "string"}}}}},
            parameters=[{"name": "If-None-Match", "in": "header", "required": False,
                         "description": "The `ETag` of the last feed read; a 304 when it is still current.",
                         "schema": {"type": "string"}}],
            tag="kiosks")},
        **_coupon_paths(),
    }


def _coupon_paths() -> dict[str, dict[str, Any]]:
    """The paths of redemption (riders) and the counter (POS)."""
    replayed = ("409", "The Idempotency-Key was used for another request", "idempotency_key_reused")
    not_found = ("404", "No such coupon, or another rider's", "not_found")
    return {
        "/redemptions": {"post": _operation(
            "redeem", "Redeem a campaign",
            "Buy one coupon of a live campaign with points. The debit, the stock and the coupon are one "
            "transaction: all or nothing. A repeat with the same Idempotency-Key returns the first coupon and "
            "debits nothing.", "rider",
            {"201": _json(_ref("RedemptionReply"), "The coupon.")},
            MALFORMED,
            ("409", "Not enough points, sold out, the per-rider limit reached, or not on sale", "insufficient_points"),
            ("409", "Not enough points, sold out, the per-rider limit reached, or not on sale", "out_of_stock"),
            ("409", "Not enough points, sold out, the per-rider limit reached, or not on sale", "limit_reached"),
            ("409", "Not enough points, sold out, the per-rider limit reached, or not on sale", "not_live"),
            replayed, ("422", "`campaign_id` is missing or not a positive whole number", "invalid"),
            body=_body(_ref("RedemptionRequest"), "The campaign."), parameters=[_param("IdempotencyKey")],
            tag="redemption")},
        "/me/coupons": {"get": _operation(
            "listMyCoupons", "The rider's coupons",
            "The rider's coupons, newest first, in pages of `limit` items; optionally of one status.", "rider",
            {"200": _json(_page("Coupon"), "A page.")},
            ("422", "`status` unknown, `limit` out of range, or a cursor we did not make", "invalid"),
            parameters=[_param("CouponStatus"), _param("Limit"), _param("Cursor")], tag="redemption")},
        "/me/coupons/{coupon_id}/qr.svg": {"get": _operation(
            "getCouponQr", "A coupon's QR code",
            "The coupon's code as a QR code, an SVG image, to show at the counter.", "rider",
            {"200": {"description": "The QR code.", "content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
            not_found, parameters=[_param("CouponId")], tag="redemption")},
        "/me/coupons/{coupon_id}/cancel": {"post": _operation(
            "cancelCoupon", "Cancel a coupon",
            "Cancel an unused coupon within its validity: its points come back exactly once and its stock returns "
            "to the campaign. An expired coupon refunds nothing.", "rider",
            {"200": _json(_ref("CancelReply"), "Cancelled.")},
            not_found, ("409", "Already used, cancelled or expired; `coupon_status` says which", "not_cancellable"),
            replayed, ("422", "The Idempotency-Key is too long or not printable", "invalid"),
            parameters=[_param("CouponId"), _param("IdempotencyKey")], tag="redemption")},
        "/staff/token": {"post": _operation(
            "getStaffToken", "Staff log in (POS)",
            "Exchange a cashier's or merchant owner's e-mail and password for a staff token. Only active staff of "
            "an approved merchant get one. Too many attempts get 429.", None,
            {"200": _json(_ref("StaffTokenReply"), "A new staff token.")},
            MALFORMED, ("401", "Wrong e-mail or password, or not staff of an approved merchant", "bad_credentials"),
            ("429", "Too many attempts; wait and retry", "rate_limited"),
            body=_body(_ref("StaffTokenRequest"), "The staff member's credentials."), tag="counter")},
        "/webhooks/payments": {"post": _operation(
            "receivePaymentEvent", "The payment provider's webhook",
            "Where the payment provider (Stripe's API) delivers events. The raw body must carry a valid "
            "`Stripe-Signature` header (`t=<unix time>,v1=<HMAC-SHA256 of \"t.body\" with the webhook secret>`) "
            "with a timestamp within 300 s of ours. `invoice.paid`, `invoice.payment_succeeded` and "
            "`payment_intent.succeeded` mark the invoice's statement paid; `invoice.payment_failed` and "
            "`payment_intent.payment_failed` mark it payment_failed (a paid statement stays paid). Each event id is "
            "applied once: a replay answers `duplicate` and changes nothing; other events are recorded as `ignored`.",
            None,
            {"200": _json(_obj({"event_id": _str("The provider's event id."),
                                "outcome": _str("What the event did.",
                                                enum=["paid", "payment_failed", "unchanged", "ignored",
                                                      "duplicate"])}), "Received.")},
            ("400", "A missing, malformed or wrong signature, a stale timestamp, or a body that is not an event",
             "bad_signature"),
            ("400", "A missing, malformed or wrong signature, a stale timestamp, or a body that is not an event",
             "stale_timestamp"),
            ("400", "A missing, malformed or wrong signature, a stale timestamp, or a body that is not an event",
             "malformed_json"),
            ("409", "The invoice's statement is still being issued: deliver the event again later",
             "statement_not_ready"),
            body=_body({"type": "object"}, "The provider's event, as it signed it."), tag="settlement")},
        "/counter/validate": {"post": _operation(
            "validateCoupon", "Use a coupon at the counter",
            "Mark a scanned coupon used at the staff member's store. It is accepted at most once, only at a store "
            "of its campaign, only while valid. A forged or mistyped code is `unknown_code`.", "staff",
            {"200": _json(_ref("ValidateReply"), "Accepted: give the rider the benefit.")},
            MALFORMED,
            ("403", "Another merchant's coupon, a store the campaign is not valid at, or not staff of an approved "
                    "merchant", "wrong_merchant"),
            ("403", "Another merchant's coupon, a store the campaign is not valid at, or not staff of an approved "
                    "merchant", "wrong_store"),
            ("403", "Another merchant's coupon, a store the campaign is not valid at, or not staff of an approved "
                    "merchant", "not_staff"),
            ("403", "Another merchant's coupon, a store the campaign is not valid at, or not staff of an approved "
                    "merchant", "merchant_not_approved"),
            ("404", "Not a code we issued (forged, altered or mistyped)", "unknown_code"),
            ("409", "Used before; `used_at` and `store_id` say when and where", "already_used"),
            ("410", "Past its validity, or cancelled by the rider", "expired"),
            ("410", "Past its validity, or cancelled by the rider", "cancelled"),
            ("422", "An owner did not say at which store (`store_id`)", "invalid"),
            body=_body(_ref("ValidateRequest"), "The scanned code."), tag="counter")},
    }


@functools.cache
def _build() -> dict[str, Any]:
    """The document, built once; never hand this object out."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MetroPoints API",
            "version": "1",
            "description": "Points for metro trips. JSON in and out, UTF-8; times are ISO 8601 with offset; points "
                           "and money are integers; distances are km with 3 decimals; CO2e is in grams. Errors are a "
                           '4xx status and `{"error": {"code", "message", ...}}`. Each operation says which token '
                           "kind it needs, in its description and in `x-token-kind` (null: none).",
        },
        "servers": [{"url": PREFIX}],
        "tags": [{"name": "meta", "description": "About the API."},
                 {"name": "riders", "description": "Rider accounts, trips and points."},
                 {"name": "partners", "description": "Trip feeds from metro account systems."},
                 {"name": "catalogue", "description": "The live catalogue of benefits; public."},
                 {"name": "redemption", "description": "Riders buy coupons with points, show and cancel them."},
                 {"name": "counter", "description": "Merchant staff use coupons at the counter (POS)."},
                 {"name": "kiosks", "description": "The feed of the station kiosks (one token per screen)."},
                 {"name": "settlement", "description": "The payment provider's signed events about merchants' "
                                                       "invoices."}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "`Authorization: Bearer <token>`. Token kinds: `rider` (from /auth/register or "
                               "/auth/token), `partner` (trip feeds; `flask partners create`), `kiosk` (one per "
                               "device, bound to a station; `flask kiosks create`) and `staff` (merchant owner or "
                               "cashier, for POS). An endpoint answers a token of another kind with 403 `forbidden`.",
                "x-token-kinds": TOKEN_KINDS,
            }},
            "schemas": _schemas(),
            "parameters": _parameters(),
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of API v1: a fresh deep copy of the cached one, safe to change."""
    return copy.deepcopy(_build())


def documented_paths(document: dict[str, Any]) -> frozenset[str]:
    """The operations of `document` as "METHOD /api/v1/path" strings, e.g. "POST /api/v1/trips"."""
    prefix = document["servers"][0]["url"].rstrip("/")
    return frozenset(f"{method.upper()} {prefix}{path}" for path, item in document["paths"].items()
                     for method in item if method in HTTP_METHODS)


DOCUMENTED_PATHS: frozenset[str] = documented_paths(_build())
