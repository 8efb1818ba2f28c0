"""The counter's side of redemption: which store a staff member validates for, what a validation reads in its one
round trip, and the guess limit on unknown codes.

The guess limit: a counter code is 12 digits, so unlike the signed QR code it can be guessed, one try at a time.
After GUESS_LIMIT unknown codes at a store within GUESS_WINDOW, its counter is refused (429 too_many_attempts) until
the oldest of those tries leaves the window. It lives in the database (the `unknown_code_attempts` rows), so it
holds across gunicorn workers and under `make run` (SQLite, no Redis). The good path pays nothing for it: the count
is part of the counter's facts query. Any unknown code counts, a forged QR text as much as a mistyped number: the
counter cannot tell a guess from a slip, and ten slips in ten minutes are worth the owner's look.

A refusal rolls its unit of work back (the app commits only replies below 400), so an unknown code is noted in the
session (`note_unknown_code`) and written by a hook of the unit of work's end, after the commit or the rollback, in
a short transaction of its own. It locks the store's row first (PostgreSQL), so two tries at one store are counted
one after the other and the try that locks the counter is recorded in the audit log exactly once; it deletes the
store's tries older than the window, so a store never keeps more than a handful of rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg.rows import dict_row
from sqlalchemy import delete, text
from sqlalchemy.exc import SQLAlchemyError

from metropoints.core.db import (
    MAX_ID,
    UTCDateTime,
    db,
    driver_sql,
    hot_row,
    is_postgres,
    on_unit_of_work_end,
    sql_param,
)
from metropoints.core.errors import InvalidInput
from metropoints.core.models import Role, User
from metropoints.core.operations import record_audit
from metropoints.core.timeutil import isoformat
from metropoints.marketplace.errors import MerchantNotApproved
from metropoints.marketplace.models import Store
from metropoints.marketplace.queries import portal_membership
from metropoints.redemption import rollups
from metropoints.redemption.errors import WrongStore
from metropoints.redemption.models import UnknownCodeAttempt

log = logging.getLogger(__name__)

GUESS_LIMIT = 10
GUESS_WINDOW = timedelta(minutes=10)
_PENDING = "redemption_unknown_codes"  # the session's unknown codes not yet written


def check_id(value: object, field: str) -> int:
    """A positive whole number that fits an id column; InvalidInput naming `field` otherwise."""
    if type(value) is not int or not 0 < value <= MAX_ID:
        raise InvalidInput(f"{field} must be a positive whole number.", field=field)
    return value


def counter_store_id(*, owner: bool, own_store_id: int | None, store_id: object) -> int:
    """Which store a staff member validates for: a cashier's own (any `store_id` given must be it); an owner must name
    one (InvalidInput without it). Whether that store is the merchant's and active is checked by the caller."""
    if owner:
        if store_id is None:
            raise InvalidInput("An owner must say at which store (store_id).", field="store_id")
        return check_id(store_id, "store_id")
    if store_id is not None and store_id != own_store_id:
        raise WrongStore()
    return own_store_id


def counter_store(user: User, store_id: object = None) -> Store:
    """The store a staff member validates for: a cashier's own store (any `store_id` given must be it); an owner
    must name one of their merchant's active stores. NotStaff / MerchantNotApproved (403) for anyone else."""
    try:
        member = portal_membership(user)
    except MerchantNotApproved as refused:
        # Its `status` field would clash with the JSON error reply's own `status` argument (a 500): rename it.
        raise MerchantNotApproved(merchant_status=refused.fields.get("status")) from None
    store_id = counter_store_id(owner=member.is_owner or user.role == Role.merchant_owner,
                                own_store_id=member.store_id, store_id=store_id)
    store = db.session.get(Store, store_id)
    if store is None or store.merchant_id != member.merchant_id or not store.active:
        raise WrongStore()
    return store


@dataclass(frozen=True, slots=True)
class CounterFacts:
    """What a counter checks before using a coupon, as the facts query read it (None where nothing matched)."""

    staff: bool  # an active owner or cashier
    owner: bool
    own_store_id: int | None
    merchant_id: int
    merchant_status: str
    store_id: int | None
    store_merchant_id: int | None
    store_active: bool | None
    coupon_id: int | None
    campaign_merchant_id: int | None
    title: str | None
    valid_at_store: bool
    unknown_codes: int  # at the store, within the guess window
    locked_from: datetime | None  # the GUESS_LIMIT-th newest of them: the counter opens GUESS_WINDOW after it


# Everything a counter checks before using a coupon, in one round trip: the staff member's place at an approved
# merchant (as marketplace.queries.portal_membership reads it), the store asked for and its unknown codes within the
# guess window, the coupon by its QR text or by its counter code among issued coupons (only one of the two is given;
# each arm has its own unique index), and whether its campaign is valid at that store. The checks themselves are
# made in Python, in the order of the replies.
_COUNTER_FACTS = text("""
SELECT u.active AND u.role IN ('merchant_owner', 'cashier') AS staff, u.role = 'merchant_owner' OR s.is_owner AS owner,
       s.store_id AS own_store_id, s.merchant_id, m.status AS merchant_status, st.id AS store_id,
       st.merchant_id AS store_merchant_id, st.active AS store_active, cp.id AS coupon_id,
       ca.merchant_id AS campaign_merchant_id, ca.title,
       EXISTS (SELECT 1 FROM campaign_stores cs WHERE cs.campaign_id = ca.id AND cs.store_id = st.id)
           AS valid_at_store,
       (SELECT count(*) FROM unknown_code_attempts a WHERE a.store_id = st.id AND a.at > :since) AS unknown_codes,
       (SELECT a.at FROM unknown_code_attempts a WHERE a.store_id = st.id AND a.at > :since
        ORDER BY a.at DESC LIMIT 1 OFFSET :offset) AS locked_from
FROM users u
JOIN staff_members s ON s.user_id = u.id
JOIN merchants m ON m.id = s.merchant_id
LEFT JOIN stores st ON st.id = COALESCE(:store, s.store_id)
LEFT JOIN coupons cp ON cp.code = :code OR (cp.counter_code = :counter_code AND cp.status = 'issued')
LEFT JOIN campaigns ca ON ca.id = cp.campaign_id
WHERE u.id = :user
""").columns(locked_from=UTCDateTime)
# On PostgreSQL each arm of the coupon's match is a statement of its own: with the OR of both, the planner found the
# generic plan dearer than one made for the parameters and planned the statement again at every validation (about
# 0.4 ms of the server's CPU); each arm alone keeps one plan, made once per connection.
_MATCH = "cp.code = :code OR (cp.counter_code = :counter_code AND cp.status = 'issued')"
_COUNTER_FACTS_PG = {
    "code": driver_sql(_COUNTER_FACTS.element.text.replace(_MATCH, "cp.code = :code")),
    "counter_code": driver_sql(_COUNTER_FACTS.element.text.replace(
        _MATCH, "cp.counter_code = :counter_code AND cp.status = 'issued'")),
}


def counter_facts(*, user_id: int, store_id: int | None, code: str | None, counter_code: str | None,
                  now: datetime) -> CounterFacts | None:
    """The facts of one validation (None when the user is no staff member at all); one statement on the session's
    connection, sent as it is on PostgreSQL (core.db.hot_row: no ORM work, nothing compiled)."""
    params = {"user": user_id, "store": store_id, "code": code, "counter_code": counter_code,
              "since": sql_param(now - GUESS_WINDOW), "offset": GUESS_LIMIT - 1}
    arm = "counter_code" if code is None and counter_code is not None else "code"
    if is_postgres():
        facts = hot_row(_COUNTER_FACTS_PG[arm], params, row_factory=dict_row)
    else:
        row = db.session.connection().execute(_COUNTER_FACTS, params).first()
        facts = row._asdict() if row is not None else None
    if facts is None:
        return None
    facts["staff"], facts["owner"] = bool(facts["staff"]), bool(facts["owner"])
    facts["valid_at_store"] = bool(facts["valid_at_store"])
    return CounterFacts(**facts)


# The use itself: whichever of a use, a second use or a cancel runs first wins; the others find no row.
_USE_SQL = """
UPDATE coupons SET status = 'used', used_at = :now, used_store_id = :store, used_by = :user
WHERE id = :coupon AND status = 'issued' AND expires_at > :now
RETURNING (SELECT display_name FROM riders WHERE riders.id = coupons.rider_id) AS rider_name, campaign_id
"""
# On PostgreSQL the use is counted on its campaign's day row by the same statement (redemption.rollups); on SQLite
# the caller counts it after.
USE_COUPON = {"postgresql": text(rollups.use_counted_sql(_USE_SQL)), "sqlite": text(_USE_SQL)}
USE_COUPON_PG = driver_sql(rollups.use_counted_sql(_USE_SQL))


def lock_until(locked_from: datetime) -> datetime:
    """When a counter locked by its tries opens again: the window after the try that must leave it."""
    return locked_from + GUESS_WINDOW


def note_unknown_code(*, store_id: int, user_id: int, now: datetime) -> None:
    """Remember an unknown code sent to a store's counter; it is written when the unit of work ends, however it
    ends (a refusal rolls it back)."""
    db.session.info.setdefault(_PENDING, []).append((store_id, user_id, now))


# The tries of one store inside the window, and the one whose leaving opens the counter again.
_WINDOW = text("""
SELECT count(*) AS tries,
       (SELECT at FROM unknown_code_attempts WHERE store_id = :store AND at > :since
        ORDER BY at DESC LIMIT 1 OFFSET :offset) AS locked_from
FROM unknown_code_attempts WHERE store_id = :store AND at > :since
""").columns(locked_from=UTCDateTime)
_LOCK_STORE = text("SELECT id FROM stores WHERE id = :store FOR NO KEY UPDATE")


def _write_unknown_code(store_id: int, user_id: int, now: datetime) -> None:
    """Record one unknown code: the store's row locked (PostgreSQL), its tries older than the window deleted, the
    try inserted; the try that brings the store to GUESS_LIMIT records the lock in the audit log."""
    since = now - GUESS_WINDOW
    if is_postgres():
        db.session.execute(_LOCK_STORE, {"store": store_id})
    db.session.execute(delete(UnknownCodeAttempt).where(UnknownCodeAttempt.store_id == store_id,
                                                        UnknownCodeAttempt.at <= since)
                       .execution_options(synchronize_session=False))
    db.session.add(UnknownCodeAttempt(store_id=store_id, at=now))
    db.session.flush()
    window = db.session.execute(_WINDOW, {"store": store_id, "since": sql_param(since),
                                          "offset": GUESS_LIMIT - 1}).one()
    if window.tries == GUESS_LIMIT and window.locked_from is not None:
        staff = db.session.get(User, user_id)
        reason = (f"{window.tries} unknown codes within {GUESS_WINDOW.seconds // 60} minutes; "
                  f"refused until {isoformat(lock_until(window.locked_from))}")
        record_audit(actor=staff, actor_label="" if staff else "counter", action="counter.lock",
                     subject=f"store:{store_id}", reason=reason)


def record_unknown_codes() -> None:
    """Write the unknown codes the ended unit of work noted, in a transaction of their own (the unit of work's end
    hook, after its commit or its rollback). A database that fails here loses the tries, not the reply."""
    pending = db.session.info.pop(_PENDING, None)
    if not pending:
        return
    try:
        for store_id, user_id, now in pending:
            _write_unknown_code(store_id, user_id, now)
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not record %d unknown counter codes", len(pending))


on_unit_of_work_end(commit=record_unknown_codes, rollback=record_unknown_codes)
