"""Concurrent redemptions, validations and cancellations: the database keeps stock, limits, coupons and the books
right, whatever the interleaving. Every worker has its own thread, app context and database connection."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from metropoints.accrual.models import EntryKind, LedgerEntry
from metropoints.campaigns.models import Campaign
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider
from metropoints.redemption import operations as redemption
from metropoints.redemption.models import Coupon, CouponStatus
from tests.conftest import auth
from tests.helpers import run_at_once


def outcome(result) -> str:
    """A worker's result as a short label: "ok", or the error code."""
    return result.get("error_code", "ok") if isinstance(result, dict) else repr(result)


def post_redemption(app, token: str, campaign_id: int, key: str | None = None):
    """A worker: POST /api/v1/redemptions through the full stack; returns "ok" + body or the error code."""

    def call():
        headers = auth(token) | ({"Idempotency-Key": key} if key else {})
        reply = app.test_client().post("/api/v1/redemptions", json={"campaign_id": campaign_id}, headers=headers)
        body = reply.get_json()
        if reply.status_code >= 400:
            return {"status": reply.status_code, "error_code": body["error"]["code"]}
        return {"status": reply.status_code, **body}

    return call


def test_200_riders_race_for_50_coupons(app, create_shop, create_campaign, create_riders, token_for, books):
    """200 concurrent redemptions of a stock of 50: exactly 50 coupons, 150 out_of_stock, stock 0, and every
    balance equal to the sum of its entries, 50 x price spent in all."""
    shop = create_shop()
    campaign = create_campaign(shop, point_price=120, stock_total=50, per_rider_limit=1)
    riders = create_riders(200, points=500)
    tokens = [token_for(rider) for rider in riders]
    results = run_at_once(app, [post_redemption(app, token, campaign.id) for token in tokens])
    counts = Counter(outcome(r) for r in results)
    assert counts == {"ok": 50, "out_of_stock": 150}, counts
    assert all(r["status"] == 201 for r in results if outcome(r) == "ok")
    assert len({r["coupon_id"] for r in results if outcome(r) == "ok"}) == 50
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).stock_left == 0
    assert db.session.scalar(select(func.count()).select_from(Coupon)) == 50
    assert db.session.scalar(select(func.sum(Rider.points_balance))) == 200 * 500 - 50 * 120
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)
                             .where(LedgerEntry.kind == EntryKind.redemption)) == 50
    books()


def test_per_rider_limit_holds_under_concurrent_requests(app, create_shop, create_campaign, create_riders,
                                                         token_for, books):
    """One rider sending 10 requests at once against a limit of 2 gets exactly 2 coupons."""
    shop = create_shop()
    campaign = create_campaign(shop, point_price=10, stock_total=100, per_rider_limit=2)
    rider = create_riders(points=1000)[0]
    token = token_for(rider)
    results = run_at_once(app, [post_redemption(app, token, campaign.id) for _ in range(10)])
    assert Counter(outcome(r) for r in results) == {"ok": 2, "limit_reached": 8}
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 980
    assert db.session.get(Campaign, campaign.id).stock_left == 98
    books()


def test_balance_holds_under_concurrent_requests(app, create_shop, create_campaign, create_riders, token_for,
                                                 books):
    """A rider with points for 3 coupons sending 10 requests at once buys 3; the balance never goes below zero."""
    shop = create_shop()
    campaign = create_campaign(shop, point_price=100, stock_total=100, per_rider_limit=10)
    rider = create_riders(points=350)[0]
    token = token_for(rider)
    results = run_at_once(app, [post_redemption(app, token, campaign.id) for _ in range(10)])
    assert Counter(outcome(r) for r in results) == {"ok": 3, "insufficient_points": 7}
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 50
    books()


def test_concurrent_retries_with_one_key_buy_one_coupon(app, create_shop, create_campaign, create_riders,
                                                        token_for, books):
    """Ten copies of one request with the same Idempotency-Key, sent at once, all get the same coupon, debited
    once."""
    shop = create_shop()
    campaign = create_campaign(shop, point_price=100, per_rider_limit=10)
    rider = create_riders(points=1000)[0]
    token = token_for(rider)
    results = run_at_once(app, [post_redemption(app, token, campaign.id, key="same") for _ in range(10)])
    assert all(outcome(r) == "ok" for r in results), results
    assert len({r["coupon_id"] for r in results}) == 1
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 900
    books()


def test_50_counters_validate_one_coupon(app, create_shop, create_campaign, create_riders, books):
    """50 concurrent validations of one coupon: exactly one accepted, the other 49 already_used."""
    from metropoints.core.models import User

    shop = create_shop()
    campaign = create_campaign(shop)
    rider = create_riders()[0]
    bought = redemption.redeem(rider_id=rider.id, campaign_id=campaign.id)
    commit_unit_of_work()
    cashier_id = shop.cashier.id

    def use():
        accepted = redemption.validate(cashier=db.session.get(User, cashier_id), code=bought.code)
        commit_unit_of_work()
        return accepted

    results = run_at_once(app, [use] * 50)
    kinds = Counter(type(r).__name__ for r in results)
    assert kinds == {"Acceptance": 1, "AlreadyUsed": 49}, kinds
    db.session.expire_all()
    assert db.session.get(Coupon, bought.coupon_id).status == CouponStatus.used
    books()


def test_cancel_racing_validation(app, create_shop, create_campaign, create_riders, books):
    """A rider cancelling while a cashier scans the same coupon, 25 times: each time exactly one wins; a won cancel
    refunds once and returns the stock, a won validation refunds nothing; the books stay right."""
    from metropoints.core.models import User

    shop = create_shop()
    campaign = create_campaign(shop, point_price=100, stock_total=100, per_rider_limit=100)
    rider = create_riders(points=100_000)[0]
    cashier_id, rider_id = shop.cashier.id, rider.id
    wins: Counter = Counter()
    for _ in range(25):
        bought = redemption.redeem(rider_id=rider_id, campaign_id=campaign.id)
        commit_unit_of_work()

        def cancel(coupon_id=bought.coupon_id):
            refund = redemption.cancel(rider_id=rider_id, coupon_id=coupon_id)
            commit_unit_of_work()
            return refund

        def use(code=bought.code):
            accepted = redemption.validate(cashier=db.session.get(User, cashier_id), code=code)
            commit_unit_of_work()
            return accepted

        refund, accepted = run_at_once(app, [cancel, use])
        won = (isinstance(refund, redemption.Refund), isinstance(accepted, redemption.Acceptance))
        assert won in {(True, False), (False, True)}, (refund, accepted)
        if won[0]:
            assert isinstance(accepted, redemption.CouponCancelled)
        else:
            assert isinstance(refund, redemption.NotCancellable)
        wins[won] += 1
        db.session.expire_all()
        status = db.session.get(Coupon, bought.coupon_id).status
        assert status == (CouponStatus.cancelled if won[0] else CouponStatus.used)
    books()
    db.session.expire_all()
    used = wins[(False, True)]
    assert db.session.get(Rider, rider_id).points_balance == 100_000 - 100 * used
    assert db.session.get(Campaign, campaign.id).stock_left == 100 - used


def test_cancels_racing_each_other_refund_once(app, create_shop, create_campaign, create_riders, books):
    """Ten cancels of one coupon at once: one refund."""
    shop = create_shop()
    campaign = create_campaign(shop, point_price=100)
    rider = create_riders(points=1000)[0]
    bought = redemption.redeem(rider_id=rider.id, campaign_id=campaign.id)
    commit_unit_of_work()
    rider_id = rider.id

    def cancel():
        refund = redemption.cancel(rider_id=rider_id, coupon_id=bought.coupon_id)
        commit_unit_of_work()
        return refund

    results = run_at_once(app, [cancel] * 10)
    assert Counter(type(r).__name__ for r in results) == {"Refund": 1, "NotCancellable": 9}
    db.session.expire_all()
    assert db.session.get(Rider, rider_id).points_balance == 1000
    books()


def test_concurrent_purchases_drawing_one_counter_code(app, monkeypatch, create_shop, create_campaign, create_riders,
                                                       token_for, books):
    """20 riders buying at once, each first drawing the same counter code: one coupon gets it, the others a fresh
    one in their own transaction; never two issued coupons with one code, never points without a coupon."""
    import threading

    from metropoints.redemption.codes import new_counter_code

    shared, seen = new_counter_code(), threading.local()

    def draw() -> str:
        """The shared code on a thread's first draw, a fresh one after."""
        if getattr(seen, "drawn", False):
            return new_counter_code()
        seen.drawn = True
        return shared

    monkeypatch.setattr(redemption, "new_counter_code", draw)
    shop = create_shop()
    campaign = create_campaign(shop, stock_total=50, per_rider_limit=1)
    tokens = [token_for(rider) for rider in create_riders(20, points=500)]
    results = run_at_once(app, [post_redemption(app, token, campaign.id) for token in tokens])
    assert Counter(outcome(r) for r in results) == {"ok": 20}, results
    codes = [r["counter_code"] for r in results]
    assert len(set(codes)) == 20 and shared in codes
    db.session.expire_all()
    stored = db.session.scalars(select(Coupon.counter_code).where(Coupon.status == CouponStatus.issued)).all()
    assert sorted(stored) == sorted(codes)
    books()


def test_unknown_codes_from_many_counters_lock_once(app, create_shop, token_for):
    """30 unknown codes sent to one store at once (as from several workers): each is recorded, the store's counter
    is refused afterwards, and the lock is in the audit log exactly once."""
    from metropoints.core.models import AuditEntry
    from metropoints.redemption.codes import damm_digit
    from metropoints.redemption.counter import GUESS_LIMIT
    from metropoints.redemption.models import UnknownCodeAttempt

    shop = create_shop()
    token, store_id = token_for(shop.cashier), shop.store.id

    def guess(n: int):
        """A worker: one unknown counter code through the full stack; its error code."""
        digits = f"{n:011d}"

        def call():
            reply = app.test_client().post("/api/v1/counter/validate", json={"code": digits + damm_digit(digits)},
                                           headers=auth(token))
            return {"status": reply.status_code, "error_code": reply.get_json()["error"]["code"]}

        return call

    results = run_at_once(app, [guess(n) for n in range(30)])
    counts = Counter(outcome(r) for r in results)
    assert set(counts) <= {"unknown_code", "too_many_attempts"} and counts["unknown_code"] >= GUESS_LIMIT, counts
    db.session.expire_all()
    recorded = db.session.scalar(select(func.count()).select_from(UnknownCodeAttempt)
                                 .where(UnknownCodeAttempt.store_id == store_id))
    assert recorded == counts["unknown_code"]
    assert outcome(guess(99)()) == "too_many_attempts"
    locks = db.session.scalars(select(AuditEntry.subject).where(AuditEntry.action == "counter.lock")).all()
    assert locks == [f"store:{store_id}"]
