"""The JSON bodies of API v1, each declared once as a pydantic model: it validates the request, serializes the reply
and is the OpenAPI document's schema of it (see metropoints.core.openapi; the building blocks, strictness and time
format are metropoints.core.schemas'). The catalogue item is campaigns.schemas' and the kiosk feed kiosk.api's, so
the kiosk reads the same declaration; the webhook's reply is settlement.webhooks'.

Enums are the models' own (TripStatus, EntryKind, CouponStatus, ...), limits come from the columns, the operations'
rules and the settings, so the document cannot tell a different story from the code.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from flask import current_app
from pydantic import BaseModel, Field, RootModel, StringConstraints, WithJsonSchema, WrapValidator, create_model

from metropoints.accrual.checks import MAX_DISTANCE_M, MAX_STEPS
from metropoints.accrual.ingest import ALL_FIELDS, SOURCE_RE, BatchResult
from metropoints.accrual.models import EntryKind, LedgerEntry, RiderLink, Trip, TripMode, TripStatus
from metropoints.accrual.queries import ModeTotals
from metropoints.campaigns.schemas import CatalogItem
from metropoints.core.models import Rider, Station
from metropoints.core.operations import MAX_PASSWORD, MIN_PASSWORD, PHONE_RE
from metropoints.core.pages import Page
from metropoints.core.schemas import Id, ReplyBody, RequestBody, Timestamp, text, width
from metropoints.redemption.codes import COUNTER_CODE_RE
from metropoints.redemption.models import Coupon, CouponStatus

Km = Annotated[float, Field(ge=0, json_schema_extra={"x-decimals": 3})]
StationId = Annotated[str, StringConstraints(max_length=width(Station.station_id))]
Source = text(pattern=SOURCE_RE.pattern)


def km(metres: int) -> float:
    """Metres as km with 3 decimals."""
    return round(metres / 1000, 3)


# Riders: accounts and tokens.


class RegisterRequest(RequestBody):
    """The new account."""

    phone: text(pattern=PHONE_RE.pattern) = Field(description="The login: 6 to 15 digits, optionally a leading `+`.")
    password: Annotated[str, StringConstraints(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]
    display_name: text(min_length=1, max_length=width(Rider.display_name)) | None = Field(
        None, description="Defaults to `rider-` and the phone's last 4 digits.")


class RegisterReply(ReplyBody):
    """Registered."""

    rider_id: int
    token: str = Field(description="A rider token; it expires RIDER_TOKEN_DAYS after it was issued.")


class TokenRequest(RequestBody):
    """The rider's credentials."""

    phone: str
    password: str


class TokenReply(ReplyBody):
    """A new token."""

    token: str
    expires_at: Timestamp = Field(description="When the token stops working (RIDER_TOKEN_DAYS after it was issued); "
                                  "`POST /auth/logout` ends it sooner.")


class Link(RequestBody):
    """A metro account reference: the system and the rider's reference in it."""

    source: Source = Field(description="The metro account system, e.g. `shenyang_metro`.")
    ref: text(min_length=1, max_length=width(RiderLink.ref))


class LinkReply(ReplyBody):
    """Linked."""

    source: str
    ref: str
    held_trips_credited: int = Field(ge=0, description="Trips held for this reference and credited now.")
    points_balance: int = Field(description="The balance after crediting them.")


class ModeFigures(ReplyBody):
    """What the rider's credited and capped trips of one mode add up to."""

    km: Km
    co2e_grams: int = Field(ge=0)
    points: int = Field(ge=0, description="Points credited for these trips (operators' adjustments aside).")

    @classmethod
    def of(cls, totals: ModeTotals) -> ModeFigures:
        """A mode's totals as the rider sees them."""
        return cls(km=km(totals.metres), co2e_grams=totals.co2e_grams, points=totals.points)


# One key per mode (every mode, at zero without trips), from the models' own enum.
ByMode = create_model("ByMode", __base__=ReplyBody, __doc__="The rider's figures per mode of travel.",
                      **{mode.value: (ModeFigures, ...) for mode in TripMode})


class Me(ReplyBody):
    """The rider."""

    rider_id: int
    display_name: str
    points_balance: int
    km_total: Km = Field(description="Distance of all credited and capped trips.")
    co2e_grams_total: int = Field(ge=0, description="CO2e saved, in grams.")
    links: list[Link]
    by_mode: ByMode = Field(description="km, grams CO2e and points of the credited and capped trips, per mode.")


class TripItem(ReplyBody):
    """A trip of the rider's."""

    trip_id: str
    source: str
    mode: TripMode
    entry_station: str | None = Field(description="Metro trips only.")
    exit_station: str | None = Field(description="Metro trips only.")
    line: str | None = Field(description="Bus trips only: the line.")
    steps: int | None = Field(description="Walking only: the day's step count reported.")
    entered_at: Timestamp = Field(description="Entry, boarding or start; a walk's day from midnight.")
    exited_at: Timestamp = Field(description="Exit, alighting or end; a walk's day to its last second.")
    km: Km = Field(description="Metro: network distance between the stations; bus and bike: as reported (a bus "
                               "line's average when not); walking: what this report added to the day.")
    points: int = Field(ge=0)
    co2e_grams: int = Field(ge=0)
    status: TripStatus = Field(description="`review`: under review, no points until an operator decides; "
                                           "`duplicate`: another report of a trip already credited.")
    reason: str | None = Field(description="Why a trip is under review, refused or a duplicate.")
    rule_version: int = Field(description="Id of the mode's rule version in force at the exit (see "
                                          "`GET /api/v1/methodology`).")

    @classmethod
    def of(cls, trip: Trip) -> TripItem:
        """A stored trip as the rider sees it."""
        return cls(trip_id=trip.trip_id, source=trip.source, mode=trip.mode, entry_station=trip.entry_station or None,
                   exit_station=trip.exit_station or None, line=trip.line, steps=trip.steps,
                   entered_at=trip.entered_at, exited_at=trip.exited_at, km=km(trip.distance_m), points=trip.points,
                   co2e_grams=trip.co2e_grams, status=trip.status, reason=trip.reason or None,
                   rule_version=trip.rule_version_id)


class LedgerItem(ReplyBody):
    """A ledger entry of the rider's."""

    entry_id: int
    at: Timestamp
    points: int = Field(description="Signed: credits positive, debits negative.")
    kind: EntryKind
    ref: str = Field(description="What it is about: `source:trip_id`, `coupon:<id>`, an expiry year, ...")
    reason: str = Field(description="An operator's reason (adjustments); otherwise empty.")
    balance_after: int

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerItem:
        """A ledger entry as the rider sees it."""
        return cls(entry_id=entry.id, at=entry.at, points=entry.points, kind=entry.kind, ref=entry.ref,
                   reason=entry.reason, balance_after=entry.balance_after)


# Partners: the trip feed.


def _trips_max(schema: dict[str, Any]) -> None:
    """The feed's limit, from the settings of the app the document is made for."""
    schema["maxItems"] = current_app.config["TRIPS_MAX_PER_CALL"]


class TripRow(BaseModel):
    """One trip of any mode. Checked row by row by the feed, never here: a row that breaks its mode's shape is
    refused with its reason (`malformed`, `unknown_line`, `missing_distance`, `implausible_steps`, ...) and the rest of
    the call still counts. Metro (the default mode) takes the stations and times; bus `line`, `boarded_at`,
    optional `alighted_at` and `distance_m`; bike `started_at`, `ended_at`, `distance_m`; walk `day`, `steps`."""

    trip_id: Annotated[str, StringConstraints(min_length=1, max_length=width(Trip.trip_id))] = Field(
        description="Unique per source; a walking day reported again needs a new one.")
    source: Annotated[str, StringConstraints(pattern=SOURCE_RE.pattern)]
    rider_ref: Annotated[str, StringConstraints(min_length=1, max_length=width(Trip.rider_ref))]
    entry_station: StationId | None = Field(None, description="Metro.")
    exit_station: StationId | None = Field(None, description="Metro.")
    entered_at: Timestamp | None = Field(None, description="Metro.")
    exited_at: Timestamp | None = Field(None, description="Metro; at most 30 days ago and 5 minutes ahead (so is "
                                                          "every mode's end).")
    mode: TripMode = Field(TripMode.metro, description="Absent: metro.")
    line: Annotated[str, StringConstraints(min_length=1, max_length=width(Trip.line))] | None = Field(
        None, description="Bus: a line operators have set (`unknown_line` otherwise).")
    boarded_at: Timestamp | None = Field(None, description="Bus.")
    alighted_at: Timestamp | None = Field(None, description="Bus, optional; after boarding.")
    distance_m: Annotated[int, Field(ge=1, le=MAX_DISTANCE_M)] | None = Field(
        None, description="Bike (required: `missing_distance`), bus (optional: else the line's average trip "
                          "distance, else the city default). Above 25 km/h on a bike is `implausible_speed`.")
    started_at: Timestamp | None = Field(None, description="Bike.")
    ended_at: Timestamp | None = Field(None, description="Bike.")
    day: date | None = Field(None, description="Walk: the day (Asia/Shanghai), YYYY-MM-DD.")
    steps: Annotated[int, Field(ge=0, le=MAX_STEPS)] | None = Field(
        None, description="Walk: the day's count; more is `implausible_steps`. One walking credit per rider and day "
                          "across sources: a higher count later tops up the difference, a lower one changes nothing.")


assert tuple(TripRow.model_fields) == ALL_FIELDS, "TripRow documents the feed's columns, in their order"


def _rows_unchecked(value: object, handler: Any) -> object:
    """A list goes through as it came (the feed checks each row); anything else is refused as not a list."""
    return value if isinstance(value, list) else handler(value)


class TripsRequest(RequestBody):
    """The trips."""

    trips: Annotated[list[TripRow], WrapValidator(_rows_unchecked)] = Field(
        json_schema_extra=_trips_max, description="More than the limit is a 413 `too_many_trips`.")


class RejectedRow(ReplyBody):
    """A refused row."""

    trip_id: str = Field(description="As given (empty when missing).")
    reason: str = Field(description="Why, e.g. `malformed` or `unknown_station` (the README's accrual section "
                                    "lists them).")
    line: int = Field(ge=1, description="1-based position of the row in `trips`.")


class TripsReply(ReplyBody):
    """What became of each row: the counts and the refused rows add up to the rows given."""

    credited: int = Field(ge=0, description="New trips of linked riders, credited in full.")
    duplicates: int = Field(ge=0, description="Trips received before (same source and trip_id; nothing changed), and "
                                              "trips credited once already from another report (the same metro ride "
                                              "from another source, a walking day with no higher count), kept as "
                                              "`duplicate`.")
    held: int = Field(ge=0, description="New trips whose rider_ref nobody has linked yet.")
    capped: int = Field(ge=0, description="New trips of linked riders cut by the daily cap or their mode's cap.")
    review: int = Field(ge=0, description="New trips held for an operator's review (too many a day, back and forth "
                                          "between two stations, overlapping another trip); no points yet.")
    rejected: list[RejectedRow]

    @classmethod
    def of(cls, result: BatchResult) -> TripsReply:
        """A batch's result as the feed answers it."""
        return cls(credited=result.credited, duplicates=result.duplicates, held=result.held, capped=result.capped,
                   review=result.review,
                   rejected=[RejectedRow(trip_id=r.trip_id, reason=r.reason, line=r.line_no) for r in result.rejected])


# Redemption and the counter.


class RedemptionRequest(RequestBody):
    """The campaign."""

    campaign_id: Id = Field(description="A live campaign.")


CounterCode = Annotated[str, Field(pattern=COUNTER_CODE_RE.pattern, description=(
    "The coupon's 12-digit counter code (the last digit a check digit), for a cashier to type when the QR cannot be "
    "scanned; show it 4-4-4 (1234-5678-9012) under the QR, as qr.svg does. Unique among issued coupons only."))]


class RedemptionReply(ReplyBody):
    """The coupon."""

    coupon_id: int
    code: str = Field(description="The text inside the coupon's QR code.")
    counter_code: CounterCode
    points_spent: int = Field(ge=1)
    balance_after: int = Field(ge=0)
    expires_at: Timestamp = Field(description="End of the coupon's validity.")


class CouponItem(ReplyBody):
    """A coupon the rider bought."""

    coupon_id: int
    campaign_id: int
    title: str
    status: CouponStatus = Field(description="As the rider sees it: an issued coupon past its validity is expired.")
    code: str
    counter_code: CounterCode
    issued_at: Timestamp
    expires_at: Timestamp
    used_at: Timestamp | None
    points_spent: int = Field(ge=1)

    @classmethod
    def of(cls, coupon: Coupon, title: str, status: CouponStatus) -> CouponItem:
        """A coupon with its campaign's title and the status the rider sees."""
        return cls(coupon_id=coupon.id, campaign_id=coupon.campaign_id, title=title, status=status, code=coupon.code,
                   counter_code=coupon.counter_code, issued_at=coupon.issued_at, expires_at=coupon.expires_at,
                   used_at=coupon.used_at, points_spent=coupon.points_spent)


class CancelReply(ReplyBody):
    """Cancelled."""

    coupon_id: int
    points_refunded: int = Field(ge=1)
    balance_after: int = Field(ge=0)


class StaffTokenRequest(RequestBody):
    """The staff member's portal login, with the second factor where the account has one."""

    email: str
    password: str
    otp: str | None = Field(default=None, max_length=64, description=(
        "The second factor, as on the portal's code page: the current 6-digit code from the authenticator app, or "
        "an unused recovery code (each code is taken once). Required of an account with a second factor: without "
        "a valid one the reply is 401 `second_factor_required`. A cashier whose owner requires a second factor and "
        "who has not set one up gets 403 `second_factor_not_enrolled` (enrol in the portal first). Ignored for an "
        "account without one."))


class StaffTokenReply(ReplyBody):
    """A new staff token."""

    token: str
    expires_at: Timestamp


# Whatever is sent is looked up as it is: anything but a code we issued (a number, null, a forged string) is
# `unknown_code`, never a 422, so the counter always hears the same refusal for a bad scan.
ScannedCode = Annotated[Any, WithJsonSchema({"type": "string", "description": "The text inside the coupon's QR "
                                             "code, as scanned, or its 12-digit counter code, with or without "
                                             "spaces or dashes; anything else is `unknown_code`."})]


class ValidateRequest(RequestBody):
    """The scanned code."""

    code: ScannedCode = None
    store_id: Id | None = Field(None, description="For a merchant owner, the store of theirs the coupon is used at "
                                                  "(required for owners); a cashier always validates for their own.")


class ValidateReply(ReplyBody):
    """Accepted: give the rider the benefit."""

    result: Literal["accepted"]
    coupon_id: int
    title: str
    rider_display_name: str
    store_id: int


# The document itself.


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""


class TripPage(Page[TripItem]):
    """A page of the rider's trips, newest first."""


class LedgerPage(Page[LedgerItem]):
    """A page of the rider's ledger, newest first."""


class CatalogPage(Page[CatalogItem]):
    """A page of the live catalogue, newest first."""


class CouponPage(Page[CouponItem]):
    """A page of the rider's coupons, newest first."""
