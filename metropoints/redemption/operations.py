"""Redemption: riders buy coupons with points, cancel unused ones, and cashiers use them at the counter.

Every state change is one guarded statement, so concurrency is the database's business (invariants 3 and 4):
- redeem: the rider's row is locked first (so their limit and balance checks cannot race), then one statement takes
  the stock, debits the balance, issues the coupon and posts the ledger entry. The campaign's stock row, which every
  buyer of a flash sale queues on, is locked last and held for that one statement plus the commit.
- cancel and use: `UPDATE coupons ... WHERE status = 'issued'`; whichever runs first wins, the other finds no row.
  What the counter reads first, which store it serves and its guess limit are redemption.counter's.
- a counter code is unique among issued coupons (a partial unique index). Its 10^11 values make a clash rare, but
  the insert never fails on one: it skips (`ON CONFLICT ... DO NOTHING`), and the purchase is finished with a fresh
  code in the same transaction, so no issued coupon shares a code and no points leave without a coupon.
- expiry: one set-wise UPDATE of the coupons past their validity. Expired coupons refund nothing: the rider had the
  whole validity to use or cancel them.
Each change is also counted on its campaign's day row (redemption.rollups), last, in the same transaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from metropoints.accrual.errors import InsufficientPoints
from metropoints.accrual.ledger import post_entry
from metropoints.accrual.models import EntryKind
from metropoints.campaigns import soldout
from metropoints.campaigns.models import Campaign, CampaignStatus
from metropoints.core.db import MAX_ID, db, hot_row, is_postgres, primary_is_postgres, sql_param
from metropoints.core.errors import NotFound
from metropoints.core.models import Rider, User
from metropoints.core.timeutil import service_day, utcnow
from metropoints.marketplace.errors import MerchantNotApproved, NotStaff
from metropoints.marketplace.models import MerchantStatus
from metropoints.redemption import rollups, sale_sql
from metropoints.redemption.codes import new_code, new_counter_code, normalise_code, normalise_counter_code
from metropoints.redemption.counter import (
    USE_COUPON,
    USE_COUPON_PG,
    check_id,
    counter_facts,
    counter_store_id,
    lock_until,
    note_unknown_code,
)
from metropoints.redemption.errors import (
    AlreadyUsed,
    CouponCancelled,
    CouponExpired,
    CouponNotFound,
    LimitReached,
    NotCancellable,
    NotLive,
    OutOfStock,
    TooManyAttempts,
    UnknownCode,
    WrongMerchant,
    WrongStore,
)
from metropoints.redemption.models import ISSUED, Coupon, CouponStatus


@dataclass(frozen=True)
class Redemption:
    """A coupon just bought."""

    coupon_id: int
    code: str
    counter_code: str
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
    used_at: datetime


def effective_status(coupon: Coupon, now: datetime | None = None) -> CouponStatus:
    """The status a rider sees: an issued coupon past its validity is expired even before the expiry job ran."""
    now = now or utcnow()
    if coupon.status == CouponStatus.issued and coupon.expires_at <= now:
        return CouponStatus.expired
    return coupon.status


@dataclass(frozen=True, slots=True)
class _SaleTerms:
    """What a redemption needs to know of a campaign on sale, and the buyer's balance under their row lock."""

    point_price: int
    per_rider_limit: int
    coupon_valid_days: int
    balance: int


def _sale_terms(campaign_id: int, rider_id: int, now: datetime, postgres: bool,
                generation: str | None = None) -> _SaleTerms:
    """The campaign's terms with the rider's row locked; OutOfStock when it would be on sale but for its stock (and
    then the campaign is marked sold out: campaigns.soldout), NotLive otherwise (unknown, not approved, outside its
    sale window, or its merchant is not approved). Core SQL on the session's connection: no ORM work."""
    params = {"c": campaign_id, "r": rider_id, "now": now if postgres else sql_param(now)}
    row = (hot_row(sale_sql.SALE_TERMS_PG, params) if postgres
           else db.session.connection().execute(sale_sql.SALE_TERMS["sqlite"], params).first())
    if row is None or not row[4]:
        raise NotLive()
    price, limit, valid_days, stock_left, _, balance = row
    if stock_left <= 0:
        soldout.mark_now(campaign_id, generation)
        raise OutOfStock()
    if balance is None:
        raise NotFound("No such rider.")
    return _SaleTerms(point_price=price, per_rider_limit=limit, coupon_valid_days=valid_days, balance=balance)


def refuse_if_sold_out(campaign_id: object) -> None:
    """OutOfStock when the campaign is marked sold out (campaigns.soldout), and nothing otherwise (an id that is not
    one included: redeem says why). No database work: the API answers this before it looks up the buyer's token
    (core.api.require_token's `before_token`), since a sold-out campaign is what the public catalogue shows anyone,
    and in a flash sale, whose riders each try once, the token's lookup was the only round trip of a sold-out reply
    (about half of its work in the app). A mark is the database's own finding (see campaigns.soldout)."""
    if type(campaign_id) is int and 0 < campaign_id <= MAX_ID and primary_is_postgres() and \
            soldout.check(campaign_id)[0]:
        raise OutOfStock()


def redeem(*, rider_id: int, campaign_id: object, now: datetime | None = None) -> Redemption:
    """Buy one coupon of a live campaign: debit, stock and coupon in one transaction, all or nothing.

    NotLive, LimitReached, InsufficientPoints and OutOfStock (all 409) say why not. A campaign marked sold out
    (campaigns.soldout: the database found it without stock, and no stock came back since) is OutOfStock at once,
    without the database. Otherwise two round trips on PostgreSQL: the campaign's terms with the rider's lock, then
    one statement that checks the limit and takes stock, points and coupon. The caller commits at once, so the stock
    row stays locked for that statement and the commit. The coupon gets a fresh counter code; in the rare case an
    issued coupon holds it, the coupon and its ledger entry follow in a statement each, with another code (stock and
    points were taken once, by the first). Both statements are Core SQL on the session's connection: no ORM objects.
    """
    campaign_id = check_id(campaign_id, "campaign_id")
    marked, generation = soldout.check(campaign_id) if primary_is_postgres() else (False, None)
    if marked:
        raise OutOfStock()
    postgres = is_postgres()
    now = now or utcnow()
    terms = _sale_terms(campaign_id, rider_id, now, postgres, generation)
    price, balance = terms.point_price, terms.balance
    code, counter_code = new_code(), new_counter_code()
    expires_at = now + timedelta(days=terms.coupon_valid_days)
    if postgres:
        held, stock, coupon_id, balance_after, stock_left = hot_row(sale_sql.REDEEM_PG, {
            "c": campaign_id, "r": rider_id, "price": price, "limit": terms.per_rider_limit, "balance": balance,
            "code": code, "counter_code": counter_code, "now": now, "expires": expires_at,
            "day": service_day(now)})
    else:
        held = db.session.execute(sale_sql.HELD, {"c": campaign_id, "r": rider_id}).scalar_one()
        stock = coupon_id = balance_after = stock_left = None
    if held >= terms.per_rider_limit:
        raise LimitReached(limit=terms.per_rider_limit)
    if balance < price:
        raise InsufficientPoints(points_balance=balance, point_price=price)
    coupon = _NewCoupon(campaign_id=campaign_id, rider_id=rider_id, code=code, counter_code=counter_code,
                        points_spent=price, issued_at=now, expires_at=expires_at)
    if not postgres:
        coupon, coupon_id, balance_after = _redeem_in_steps(coupon)
    elif stock is None:  # the guarded UPDATE found no stock (the rider's limit and balance passed)
        soldout.mark_now(campaign_id, generation)
        raise OutOfStock()
    elif balance_after is None:  # cannot happen with the rider locked; the error rolls the stock back with it
        raise InsufficientPoints(points_balance=balance, point_price=price)
    elif coupon_id is None:  # its counter code was taken: stock and points are, the coupon comes now
        coupon, coupon_id = _issue(coupon)
        rollups.count_event(campaign_id=campaign_id, at=now, bought=1, points_spent=price)
        db.session.execute(sale_sql.REDEMPTION_ENTRY, {
            "r": rider_id, "now": now, "day": service_day(now), "price": price, "ref": f"coupon:{coupon_id}",
            "balance": balance_after})
    if stock_left == 0:  # this sale took the last unit: sold out once it commits
        soldout.mark_on_commit(campaign_id, generation)
    # Rows the session may hold went stale behind its back.
    _forget_loaded(Campaign, campaign_id)
    _forget_loaded(Rider, rider_id)
    return Redemption(coupon_id=coupon_id, code=code, counter_code=coupon.counter_code, points_spent=price,
                      balance_after=balance_after, expires_at=expires_at)


@dataclass(frozen=True, slots=True)
class _NewCoupon:
    """The row a redemption inserts."""

    campaign_id: int
    rider_id: int
    code: str
    counter_code: str
    points_spent: int
    issued_at: datetime
    expires_at: datetime


# Tries, each with a fresh counter code, before a purchase whose codes are all taken gives up (and rolls back). With
# 10^11 codes and far fewer issued coupons, a second try is already rare.
_ISSUE_TRIES = 5


def _issue(coupon: _NewCoupon) -> tuple[_NewCoupon, int]:
    """Insert the coupon, drawing a fresh counter code while an issued coupon holds it: (the coupon as inserted, its
    id). The insert skips on that clash instead of failing, so the transaction stays usable and needs no savepoint."""
    insert = pg_insert if is_postgres() else sqlite_insert
    for _ in range(_ISSUE_TRIES):
        coupon_id = db.session.execute(
            insert(Coupon.__table__).values(status=CouponStatus.issued, **asdict(coupon))
            .on_conflict_do_nothing(index_elements=[Coupon.counter_code], index_where=text(ISSUED))
            .returning(Coupon.id)).scalar()
        if coupon_id is not None:
            return coupon, coupon_id
        coupon = replace(coupon, counter_code=new_counter_code())
    raise RuntimeError("no free counter code after several tries")


def _redeem_in_steps(coupon: _NewCoupon) -> tuple[_NewCoupon, int, int]:
    """The same steps as sale_sql.REDEEM, one statement each (SQLite: one writer at a time, inside one transaction):
    (the coupon as inserted, its id, the balance after)."""
    campaign_id, now = coupon.campaign_id, coupon.issued_at
    taken = db.session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.stock_left > 0,
                               Campaign.status == CampaignStatus.approved, Campaign.valid_from <= now,
                               Campaign.valid_until > now)
        .values(stock_left=Campaign.stock_left - 1).returning(Campaign.id)
        .execution_options(synchronize_session=False)).scalar_one_or_none()
    if taken is None:
        raise OutOfStock()
    coupon, coupon_id = _issue(coupon)
    entry = post_entry(rider_id=coupon.rider_id, points=-coupon.points_spent, kind=EntryKind.redemption,
                       ref=f"coupon:{coupon_id}", at=now)
    rollups.count_event(campaign_id=campaign_id, at=now, bought=1, points_spent=coupon.points_spent)
    return coupon, coupon_id, entry.balance_after


def rider_coupon(*, rider_id: int, coupon_id: int) -> Coupon:
    """One of the rider's coupons; CouponNotFound for another rider's or a missing one."""
    coupon = db.session.get(Coupon, coupon_id) if 0 < coupon_id <= MAX_ID else None
    if coupon is None or coupon.rider_id != rider_id:
        raise CouponNotFound()
    return coupon


def coupon_for_qr(*, rider_id: int, coupon_id: int) -> Coupon:
    """One of the rider's coupons whose QR code the app may show. A cancelled one is gone (410 cancelled): its points
    came back and no counter will take its code. Used and expired ones are still shown, as a wallet keeps them; the
    counter says why it refuses them. CouponNotFound for another rider's or a missing one."""
    coupon = rider_coupon(rider_id=rider_id, coupon_id=coupon_id)
    if coupon.status == CouponStatus.cancelled:
        raise CouponCancelled(cancelled_at=coupon.cancelled_at)
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
    soldout.clear_on_commit(campaign_id)  # the stock is back once this commits
    rollups.count_event(campaign_id=campaign_id, at=now, cancelled=1, points_refunded=points)
    _forget_loaded(Coupon, coupon_id)
    _forget_loaded(Campaign, campaign_id)
    return Refund(coupon_id=coupon_id, points_refunded=points, balance_after=entry.balance_after)


def _forget_loaded(model: type, ident: int) -> None:
    """Expire a row the session may hold, after SQL changed it behind the ORM's back."""
    loaded = db.session.identity_map.get(db.session.identity_key(model, ident))
    if loaded is not None:
        db.session.expire(loaded)


# Why a coupon could not be used: its state as the guarded use found it (Core SQL, no ORM object).
_WHY_NOT_USED = select(Coupon.status, Coupon.used_at, Coupon.used_store_id, Coupon.cancelled_at,
                       Coupon.expires_at).where(Coupon.id == bindparam("coupon"))


def validate(*, cashier: User | int, code: object, store_id: object = None, now: datetime | None = None) -> Acceptance:
    """Use a coupon at a counter: at most once, only at a store of its campaign, only while valid.

    `cashier` is the staff member's User or their user id (the POS API has only the token's). `code` is the text
    inside the QR or the coupon's counter code (12 digits, with or without spaces or dashes); a counter code is
    looked up among issued coupons only, the only ones it is unique among. NotStaff / MerchantNotApproved (403) for
    anyone but active staff of an approved merchant, then the store's refusals; a store whose counter was sent too
    many unknown codes is refused (429 too_many_attempts, with `until`) whatever the code. A QR text whose signature
    does not check, or a number whose check digit does not, matches no coupon row (404 unknown_code), and every
    unknown code counts towards that limit. Two round trips: the facts, then one guarded UPDATE; when that finds no
    row, the coupon is read again to say why (409 already_used with when and where, 410 expired / cancelled).
    """
    now = now or utcnow()
    user_id = cashier if isinstance(cashier, int) else cashier.id
    qr_code = normalise_code(code)
    counter_code = normalise_counter_code(code) if qr_code is None else None
    # Only a valid id reaches SQL; anything else is still refused below, by the same rules as counter_store's.
    store_param = store_id if type(store_id) is int and 0 < store_id <= MAX_ID else None
    facts = counter_facts(user_id=user_id, store_id=store_param, code=qr_code, counter_code=counter_code, now=now)
    if facts is None or not facts.staff:
        raise NotStaff()
    if facts.merchant_status != MerchantStatus.approved.value:
        raise MerchantNotApproved(merchant_status=facts.merchant_status)
    store = counter_store_id(owner=facts.owner, own_store_id=facts.own_store_id, store_id=store_id)
    if facts.store_id != store or facts.store_merchant_id != facts.merchant_id or not facts.store_active:
        raise WrongStore()
    if facts.locked_from is not None:
        raise TooManyAttempts(until=lock_until(facts.locked_from), attempts=facts.unknown_codes)
    if facts.coupon_id is None:
        note_unknown_code(store_id=store, user_id=user_id, now=now)
        raise UnknownCode()
    if facts.campaign_merchant_id != facts.merchant_id:
        raise WrongMerchant()
    if not facts.valid_at_store:
        raise WrongStore()
    postgres = is_postgres()
    connection = db.session.connection()
    params = {"now": sql_param(now), "store": store, "user": user_id, "coupon": facts.coupon_id,
              "day": sql_param(service_day(now))}
    found = hot_row(USE_COUPON_PG, params) if postgres else connection.execute(USE_COUPON["sqlite"], params).first()
    rider_name = found[0] if found is not None else None
    if rider_name is None:
        coupon = connection.execute(_WHY_NOT_USED, {"coupon": facts.coupon_id}).one()
        status = CouponStatus(coupon.status)
        if status == CouponStatus.issued and coupon.expires_at <= now:
            status = CouponStatus.expired  # as effective_status says it
        if status == CouponStatus.used:
            raise AlreadyUsed(used_at=coupon.used_at, store_id=coupon.used_store_id)
        if status == CouponStatus.cancelled:
            raise CouponCancelled(cancelled_at=coupon.cancelled_at)
        raise CouponExpired(expires_at=coupon.expires_at)
    if not postgres:
        rollups.count_use(coupon_id=facts.coupon_id, at=now)
    _forget_loaded(Coupon, facts.coupon_id)
    return Acceptance(coupon_id=facts.coupon_id, title=facts.title, rider_display_name=rider_name, store_id=store,
                      used_at=now)


def expire_coupons(*, now: datetime | None = None) -> int:
    """Mark every issued coupon past its validity expired, in one statement; running it again changes nothing.

    No points come back for an expired coupon (riders can cancel an unused coupon while it is valid).
    """
    return rollups.expire_counted("status = 'issued' AND expires_at <= :now", {}, now or utcnow())
