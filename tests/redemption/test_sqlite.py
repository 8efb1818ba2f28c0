"""The zero-setup SQLite default runs the same redemption rules, one statement after another."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work

pytestmark = pytest.mark.sqlite


@dataclass
class SqliteShop:
    """What the SQLite tests work with: a cashier at the store a live campaign is valid at, and a rider with 1000
    points."""

    cashier: object
    store: object
    campaign: object
    rider: object


@pytest.fixture
def shop(sqlite_app) -> SqliteShop:
    """An approved merchant with a store, a cashier there, a live campaign of stock 2, a rider with points."""
    from metropoints.accrual.ledger import post_entry
    from metropoints.accrual.models import EntryKind
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus, CampaignStore
    from metropoints.core.models import Rider, Role
    from metropoints.core.operations import create_user
    from metropoints.core.timeutil import utcnow
    from metropoints.marketplace.models import Category, Merchant, MerchantStatus, StaffMember, Store
    from tests.redemption import PASSWORD, STATION_A

    owner = create_user(email="o@shop.example", password=PASSWORD, role=Role.merchant_owner)
    merchant = Merchant(name="Shop", category=Category.dining, contact_name="Li", contact_phone="13900000000",
                        licence_no="LIC1", status=MerchantStatus.approved, owner_id=owner.id)
    db.session.add(merchant)
    db.session.flush()
    store = Store(merchant_id=merchant.id, name="S", address="1 Road", station_id=STATION_A)
    db.session.add(store)
    db.session.flush()
    cashier = create_user(email="c@shop.example", password=PASSWORD, role=Role.cashier)
    db.session.add(StaffMember(user_id=cashier.id, merchant_id=merchant.id, store_id=store.id))
    now = utcnow()
    campaign = Campaign(merchant_id=merchant.id, status=CampaignStatus.approved, title="Tea", category=Category.dining,
                        benefit_type=BenefitType.free_item, point_price=100, stock_total=2, stock_left=2,
                        per_rider_limit=3, valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=1),
                        coupon_valid_days=7)
    db.session.add(campaign)
    db.session.flush()
    db.session.add(CampaignStore(campaign_id=campaign.id, store_id=store.id))
    rider = Rider(phone="13800000001", password_hash="!", display_name="R", points_balance=0)
    db.session.add(rider)
    db.session.flush()
    post_entry(rider_id=rider.id, points=1000, kind=EntryKind.adjustment, reason="test")
    commit_unit_of_work()
    return SqliteShop(cashier=cashier, store=store, campaign=campaign, rider=rider)


def test_redeem_cancel_validate_expire_on_sqlite(shop):
    """Redeem, refuse, cancel, use and expire on SQLite; the balance stays the sum of the ledger."""
    from metropoints.accrual.ledger import ledger_sum
    from metropoints.campaigns.models import Campaign
    from metropoints.core.models import Rider
    from metropoints.redemption import operations as redemption
    from metropoints.redemption.models import Coupon

    rider, campaign, cashier = shop.rider, shop.campaign, shop.cashier
    first = redemption.redeem(rider_id=rider.id, campaign_id=campaign.id)
    second = redemption.redeem(rider_id=rider.id, campaign_id=campaign.id)
    commit_unit_of_work()
    assert (first.balance_after, second.balance_after) == (900, 800)
    with pytest.raises(redemption.OutOfStock):
        redemption.redeem(rider_id=rider.id, campaign_id=campaign.id)
    db.session.rollback()
    assert redemption.cancel(rider_id=rider.id, coupon_id=first.coupon_id).balance_after == 900
    commit_unit_of_work()
    assert redemption.validate(cashier=cashier, code=second.code).coupon_id == second.coupon_id
    commit_unit_of_work()
    with pytest.raises(redemption.AlreadyUsed):
        redemption.validate(cashier=cashier, code=second.code)
    db.session.rollback()
    third = redemption.redeem(rider_id=rider.id, campaign_id=campaign.id)  # the cancelled coupon's stock
    commit_unit_of_work()
    assert redemption.expire_coupons(now=third.expires_at) == 1
    commit_unit_of_work()
    db.session.expire_all()
    assert db.session.get(Coupon, third.coupon_id).status.value == "expired"
    assert db.session.get(Rider, rider.id).points_balance == ledger_sum(rider.id) == 800
    assert db.session.get(Campaign, campaign.id).stock_left == 0


def test_counter_codes_and_the_guess_limit_on_sqlite(shop, monkeypatch):
    """On SQLite too: a clashing counter code is drawn again, a coupon is used by its number with dashes, and ten
    unknown codes refuse the store's counter (429) until the window frees up."""
    from metropoints.core.timeutil import utcnow
    from metropoints.redemption import operations as redemption
    from metropoints.redemption.codes import damm_digit, format_counter_code, new_counter_code
    from metropoints.redemption.counter import GUESS_LIMIT, GUESS_WINDOW
    from metropoints.redemption.errors import TooManyAttempts, UnknownCode
    from metropoints.redemption.queries import active_counter_locks

    first = redemption.redeem(rider_id=shop.rider.id, campaign_id=shop.campaign.id)
    commit_unit_of_work()
    fresh = [first.counter_code, new_counter_code()]
    monkeypatch.setattr(redemption, "new_counter_code", lambda: fresh.pop(0))
    second = redemption.redeem(rider_id=shop.rider.id, campaign_id=shop.campaign.id)
    commit_unit_of_work()
    assert second.counter_code != first.counter_code and not fresh and second.balance_after == 800
    assert redemption.validate(cashier=shop.cashier, code=format_counter_code(first.counter_code)).coupon_id == \
        first.coupon_id
    commit_unit_of_work()

    start = utcnow()
    for n in range(GUESS_LIMIT):
        digits = f"{n:011d}"
        with pytest.raises(UnknownCode):
            redemption.validate(cashier=shop.cashier, code=digits + damm_digit(digits), now=start)
        rollback_unit_of_work()
    with pytest.raises(TooManyAttempts) as refused:
        redemption.validate(cashier=shop.cashier, code=second.counter_code, now=start + timedelta(minutes=1))
    rollback_unit_of_work()
    assert refused.value.fields["until"] == start + GUESS_WINDOW
    assert [lock.attempts for lock in active_counter_locks(merchant_id=shop.store.merchant_id)] == [GUESS_LIMIT]
    assert redemption.validate(cashier=shop.cashier, code=second.counter_code,
                               now=start + GUESS_WINDOW).coupon_id == second.coupon_id
    commit_unit_of_work()
