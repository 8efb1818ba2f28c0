"""Redemption: riders buy coupons with points, cancel unused ones, and cashiers use them at the counter.

Every state change is one guarded statement, so concurrency is the database's business (invariants 3 and 4):
- redeem: the rider's row is locked first (so their limit and balance checks cannot race), then one statement takes
  the stock, debits the balance, issues the coupon and posts the ledger entry. The campaign's stock row, which every
  buyer of a flash sale queues on, is locked last and held for that one statement plus the commit.
- cancel and use: `UPDATE coupons ... WHERE status = 'issued'`; whichever runs first wins, the other finds no row.
- expiry: one set-wise UPDATE of the coupons past their validity. Expired coupons refund nothing: the rider had the
  whole validity to use or cancel them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update

from metropoints.accrual.errors import InsufficientPoints
from metropoints.accrual.ledger import post_entry
from metropoints.accrual.models import EntryKind
from metropoints.campaigns.catalogue import live_campaign
from metropoints.campaigns.coupons import new_code, normalise_code
from metropoints.campaigns.models import Campaign, CampaignStatus, CampaignStore, Coupon, CouponStatus
from metropoints.core.db import db, is_postgres, sql_param
from metropoints.core.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from metropoints.core.models import Rider, Role, User
from metropoints.core.timeutil import service_day, utcnow
from metropoints.marketplace.errors import MerchantNotApproved
from metropoints.marketplace.models import Merchant, MerchantStatus, Store
from metropoints.marketplace.queries import portal_membership

MAX_ID = 2**31 - 1  # INTEGER primary keys; a larger id cannot exist (and must not reach the database as a 500)


class NotLive(Conflict):
    """The campaign is not on sale: unknown, not approved, outside its sale window, or its merchant is suspended."""

    code = "not_live"
    default_message = "This campaign is not on sale."


class OutOfStock(Conflict):
    """The campaign has no coupons left."""

    code = "out_of_stock"
    default_message = "This campaign is sold out."


class LimitReached(Conflict):
    """The rider holds as many coupons of this campaign as it allows (cancelled ones do not count)."""

    code = "limit_reached"
    default_message = "You already have as many coupons of this campaign as it allows."


class CouponNotFound(NotFound):
    """No such coupon, or another rider's (we do not say which)."""

    default_message = "No such coupon."


class NotCancellable(Conflict):
    """Only an issued coupon still within its validity can be cancelled."""

    code = "not_cancellable"
    default_message = "This coupon can no longer be cancelled."


class UnknownCode(NotFound):
    """A code that is not ours (forged, altered or mistyped), or that no coupon carries."""

    code = "unknown_code"
    default_message = "This is not a valid coupon code."


class WrongMerchant(Forbidden):
    """The coupon is another merchant's."""

    code = "wrong_merchant"
    default_message = "This coupon is for another merchant."


class WrongStore(Forbidden):
    """The coupon's campaign is not valid at this store."""

    code = "wrong_store"
    default_message = "This coupon is not valid at this store."


class AlreadyUsed(Conflict):
    """The coupon was used before; `used_at` and `store_id` say when and where."""

    code = "already_used"
    default_message = "This coupon has already been used."


class CouponGone(DomainError):
    """A coupon that can never be used again (410)."""

    http_status = 410


class CouponExpired(CouponGone):
    """The coupon's validity has ended."""

    code = "expired"
    default_message = "This coupon has expired."


class CouponCancelled(CouponGone):
    """The rider cancelled the coupon."""

    code = "cancelled"
    default_message = "This coupon was cancelled."


@dataclass(frozen=True)
class Redemption:
    """A coupon just bought."""

    coupon_id: int
    code: str
    points_spent: int
    balance_after: int
    expires_at: datetime


@dataclass(frozen=True)
class Refund:
    """What cancelling a coupon gave back."""

    coupon_id: int
    points_refunded: int
    balance_after: int


@dataclass(frozen=True)
class Acceptance:
    """A coupon used at a counter."""

    coupon_id: int
    title: str
    rider_display_name: str
    store_id: int


def check_id(value: object, field: str) -> int:
    """A positive whole number that fits an id column; InvalidInput naming `field` otherwise."""
    if type(value) is not int or not 0 < value <= MAX_ID:
        raise InvalidInput(f"{field} must be a positive whole number.", field=field)
    return value


def effective_status(coupon: Coupon, now: datetime | None = None) -> CouponStatus:
    """The status a rider sees: an issued coupon past its validity is expired even before the expiry job ran."""
    now = now or utcnow()
    if coupon.status == CouponStatus.issued and coupon.expires_at <= now:
        return CouponStatus.expired
    return coupon.status


def _on_sale_or_why(campaign_id: int, now: datetime) -> Campaign:
    """The campaign if it is live; OutOfStock when it would be but for its stock, NotLive otherwise."""
    campaign = live_campaign(campaign_id, now)
    if campaign is not None:
        return campaign
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is not None and campaign.status == CampaignStatus.approved \
            and campaign.valid_from <= now < campaign.valid_until \
            and db.session.get(Merchant, campaign.merchant_id).status == MerchantStatus.approved:
        raise OutOfStock()
    raise NotLive()


def _lock_rider(rider_id: int) -> int:
    """Lock the rider's row for this transaction and return the balance (SQLite has one writer: no lock needed)."""
    lock = " FOR UPDATE" if is_postgres() else ""
    balance = db.session.execute(text(f"SELECT points_balance FROM riders WHERE id = :r{lock}"),
                                 {"r": rider_id}).scalar_one_or_none()
    if balance is None:
        raise NotFound("No such rider.")
    return balance


# Stock last: the rider is locked already, so the only lock this statement waits for is the campaign's stock row.
_REDEEM_SQL = """
WITH stock AS (
    UPDATE campaigns SET stock_left = stock_left - 1
    WHERE id = :c AND stock_left > 0 AND status = 'approved' AND valid_from <= :now AND valid_until > :now
    RETURNING id),
debit AS (
    UPDATE riders SET points_balance = points_balance - :price
    WHERE id = :r AND points_balance >= :price AND EXISTS (SELECT 1 FROM stock)
    RETURNING points_balance),
coupon AS (
    INSERT INTO coupons (campaign_id, rider_id, code, status, points_spent, issued_at, expires_at)
    SELECT :c, :r, :code, 'issued', :price, :now, :expires FROM debit
    RETURNING id),
entry AS (
    INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after)
    SELECT :r, :now, :day, -:price, 'redemption', 'coupon:' || coupon.id::text, '', '', debit.points_balance
    FROM coupon, debit
    RETURNING id)
SELECT (SELECT id FROM stock), (SELECT id FROM coupon), (SELECT points_balance FROM debit), (SELECT id FROM entry)
"""


def redeem(*, rider_id: int, campaign_id: object, now: datetime | None = None) -> Redemption:
    """Buy one coupon of a live campaign: debit, stock and coupon in one transaction, all or nothing.

    NotLive, LimitReached, InsufficientPoints and OutOfStock (all 409) say why not. The caller commits at once, so
    the stock row stays locked for one statement and the commit.
    """
    campaign_id = check_id(campaign_id, "campaign_id")
    now = now or utcnow()
    # The campaign first: in a flash sale most requests come after the stock is gone and need no lock at all.
    campaign = _on_sale_or_why(campaign_id, now)
    balance = _lock_rider(rider_id)
    held = db.session.scalar(select(func.count()).select_from(Coupon).where(
        Coupon.campaign_id == campaign_id, Coupon.rider_id == rider_id, Coupon.status != CouponStatus.cancelled))
    if held >= campaign.per_rider_limit:
        raise LimitReached(limit=campaign.per_rider_limit)
    price = campaign.point_price
    if balance < price:
        raise InsufficientPoints(points_balance=balance, point_price=price)
    code, expires_at = new_code(), now + timedelta(days=campaign.coupon_valid_days)
    if is_postgres():
        stock, coupon_id, balance_after, _ = db.session.execute(text(_REDEEM_SQL), {
            "c": campaign_id, "r": rider_id, "price": price, "code": code, "now": now, "expires": expires_at,
            "day": service_day(now)}).one()
        if stock is None:
            raise OutOfStock()
        if coupon_id is None:  # cannot happen with the rider locked; the error rolls the stock back with it
            raise InsufficientPoints(points_balance=balance, point_price=price)
    else:
        coupon_id, balance_after = _redeem_in_steps(campaign_id, rider_id, price, code, now, expires_at)
    db.session.expire(campaign, ["stock_left"])
    return Redemption(coupon_id=coupon_id, code=code, points_spent=price, balance_after=balance_after,
                      expires_at=expires_at)


def _redeem_in_steps(campaign_id: int, rider_id: int, price: int, code: str, now: datetime,
                     expires_at: datetime) -> tuple[int, int]:
    """The same steps as _REDEEM_SQL, one statement each (SQLite: one writer at a time, inside one transaction)."""
    taken = db.session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.stock_left > 0,
                               Campaign.status == CampaignStatus.approved, Campaign.valid_from <= now,
                               Campaign.valid_until > now)
        .values(stock_left=Campaign.stock_left - 1).returning(Campaign.id)
        .execution_options(synchronize_session=False)).scalar_one_or_none()
    if taken is None:
        raise OutOfStock()
    coupon = Coupon(campaign_id=campaign_id, rider_id=rider_id, code=code, status=CouponStatus.issued,
                    points_spent=price, issued_at=now, expires_at=expires_at)
    db.session.add(coupon)
    db.session.flush()
    entry = post_entry(rider_id=rider_id, points=-price, kind=EntryKind.redemption, ref=f"coupon:{coupon.id}", at=now)
    return coupon.id, entry.balance_after


def rider_coupon(*, rider_id: int, coupon_id: int) -> Coupon:
    """One of the rider's coupons; CouponNotFound for another rider's or a missing one."""
    coupon = db.session.get(Coupon, coupon_id) if 0 < coupon_id <= MAX_ID else None
    if coupon is None or coupon.rider_id != rider_id:
        raise CouponNotFound()
    return coupon


def cancel(*, rider_id: int, coupon_id: int, now: datetime | None = None) -> Refund:
    """Cancel an unused coupon still within its validity: the points come back exactly once, and the stock too.

    The status moves in one guarded UPDATE, so a cancel racing a counter (or a second cancel) finds no row.
    """
    now = now or utcnow()
    row = db.session.execute(
        update(Coupon).where(Coupon.id == coupon_id, Coupon.rider_id == rider_id,
                             Coupon.status == CouponStatus.issued, Coupon.expires_at > now)
        .values(status=CouponStatus.cancelled, cancelled_at=now)
        .returning(Coupon.campaign_id, Coupon.points_spent)
        .execution_options(synchronize_session=False)).one_or_none() if 0 < coupon_id <= MAX_ID else None
    if row is None:
        coupon = rider_coupon(rider_id=rider_id, coupon_id=coupon_id)
        db.session.refresh(coupon)
        raise NotCancellable(coupon_status=effective_status(coupon, now).value)
    campaign_id, points = row
    entry = post_entry(rider_id=rider_id, points=points, kind=EntryKind.refund, ref=f"coupon:{coupon_id}", at=now)
    # Never above stock_total: the owner may have lowered it while this coupon was out.
    db.session.execute(text("UPDATE campaigns SET stock_left = CASE WHEN stock_left < stock_total "
                            "THEN stock_left + 1 ELSE stock_left END WHERE id = :c"), {"c": campaign_id})
    _forget_loaded(Coupon, coupon_id)
    _forget_loaded(Campaign, campaign_id)
    return Refund(coupon_id=coupon_id, points_refunded=points, balance_after=entry.balance_after)


def _forget_loaded(model: type, ident: int) -> None:
    """Expire a row the session may hold, after SQL changed it behind the ORM's back."""
    loaded = db.session.identity_map.get(db.session.identity_key(model, ident))
    if loaded is not None:
        db.session.expire(loaded)


def counter_store(user: User, store_id: object = None) -> Store:
    """The store a staff member validates for: a cashier's own store (any `store_id` given must be it); an owner
    must name one of their merchant's active stores. NotStaff / MerchantNotApproved (403) for anyone else."""
    try:
        member = portal_membership(user)
    except MerchantNotApproved as refused:
        # Its `status` field would clash with the JSON error reply's own `status` argument (a 500): rename it.
        raise MerchantNotApproved(merchant_status=refused.fields.get("status")) from None
    if member.is_owner or user.role == Role.merchant_owner:
        if store_id is None:
            raise InvalidInput("An owner must say at which store (store_id).", field="store_id")
        store_id = check_id(store_id, "store_id")
    else:
        if store_id is not None and store_id != member.store_id:
            raise WrongStore()
        store_id = member.store_id
    store = db.session.get(Store, store_id)
    if store is None or store.merchant_id != member.merchant_id or not store.active:
        raise WrongStore()
    return store


def validate(*, cashier: User, code: object, store_id: object = None, now: datetime | None = None) -> Acceptance:
    """Use a coupon at a counter: at most once, only at a store of its campaign, only while valid.

    A code whose signature does not check is refused (404 unknown_code) before any coupon row is read. The use
    itself is one guarded UPDATE; when it finds no row, the coupon is read again to say why (409 already_used with
    when and where, 410 expired / cancelled).
    """
    now = now or utcnow()
    store = counter_store(cashier, store_id)
    code = normalise_code(code)
    if code is None:
        raise UnknownCode()
    found = db.session.execute(select(Coupon.id, Campaign.merchant_id, Campaign.id, Campaign.title)
                               .join(Campaign, Campaign.id == Coupon.campaign_id).where(Coupon.code == code)).first()
    if found is None:
        raise UnknownCode()
    coupon_id, merchant_id, campaign_id, title = found
    if merchant_id != store.merchant_id:
        raise WrongMerchant()
    if db.session.get(CampaignStore, (campaign_id, store.id)) is None:
        raise WrongStore()
    rider_id = db.session.execute(
        update(Coupon).where(Coupon.id == coupon_id, Coupon.status == CouponStatus.issued, Coupon.expires_at > now)
        .values(status=CouponStatus.used, used_at=now, used_store_id=store.id, used_by=cashier.id)
        .returning(Coupon.rider_id).execution_options(synchronize_session=False)).scalar_one_or_none()
    if rider_id is None:
        coupon = db.session.execute(select(Coupon).where(Coupon.id == coupon_id)
                                    .execution_options(populate_existing=True)).scalar_one()
        status = effective_status(coupon, now)
        if status == CouponStatus.used:
            raise AlreadyUsed(used_at=coupon.used_at, store_id=coupon.used_store_id)
        if status == CouponStatus.cancelled:
            raise CouponCancelled(cancelled_at=coupon.cancelled_at)
        raise CouponExpired(expires_at=coupon.expires_at)
    _forget_loaded(Coupon, coupon_id)
    rider = db.session.get(Rider, rider_id)
    return Acceptance(coupon_id=coupon_id, title=title, rider_display_name=rider.display_name, store_id=store.id)


def expire_coupons(*, now: datetime | None = None) -> int:
    """Mark every issued coupon past its validity expired, in one statement; running it again changes nothing.

    No points come back for an expired coupon (riders can cancel an unused coupon while it is valid).
    """
    now = now or utcnow()
    return db.session.execute(
        text("UPDATE coupons SET status = 'expired', expired_at = :now WHERE status = 'issued' AND expires_at <= :now"),
        {"now": sql_param(now)}).rowcount


def rider_coupons_query(rider_id: int, status: CouponStatus | None = None, now: datetime | None = None):
    """(Coupon, title) rows of a rider, unordered, optionally of one status as the rider sees it."""
    now = now or utcnow()
    query = (select(Coupon, Campaign.title).join(Campaign, Campaign.id == Coupon.campaign_id)
             .where(Coupon.rider_id == rider_id))
    if status == CouponStatus.issued:
        query = query.where(Coupon.status == CouponStatus.issued, Coupon.expires_at > now)
    elif status == CouponStatus.expired:
        query = query.where((Coupon.status == CouponStatus.expired)
                            | ((Coupon.status == CouponStatus.issued) & (Coupon.expires_at <= now)))
    elif status is not None:
        query = query.where(Coupon.status == status)
    return query
