"""Creators for redemption tests: a shop (an approved merchant, its stores, cashiers), campaigns, riders with points,
tokens, and books that must balance; logging in to the portal (the counter and activity pages)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import TokenKind
from metropoints.core.operations import issue_token
from metropoints.core.timeutil import utcnow
from metropoints.redemption.operations import redeem
from tests.campaigns.conftest import create_operator, login  # noqa: F401  (fixtures)
from tests.conftest import Shop


@pytest.fixture
def create_campaign() -> Callable:
    """Creator: a campaign inserted directly (approved and on sale now unless told), valid at the given stores: of a
    shop (its first store unless told) or of a merchant (stores given)."""
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus, CampaignStore
    from metropoints.marketplace.models import Category, Merchant

    counter = iter(range(1, 1_000_000))

    def create(shop: Shop | Merchant, stores=None, *, status: CampaignStatus = CampaignStatus.approved, **fields):
        now = utcnow().replace(second=0, microsecond=0)
        values = {"title": f"Coffee voucher {next(counter)}", "category": Category.dining,
                  "benefit_type": BenefitType.voucher, "face_value_fen": 2000, "point_price": 100,
                  "stock_total": 100, "per_rider_limit": 2, "valid_from": now - timedelta(days=1),
                  "valid_until": now + timedelta(days=30), "coupon_valid_days": 30}
        values.update(fields)
        values.setdefault("stock_left", values["stock_total"])
        merchant = shop if isinstance(shop, Merchant) else shop.merchant
        campaign = Campaign(merchant_id=merchant.id, status=status, **values)
        db.session.add(campaign)
        db.session.flush()
        db.session.add_all(CampaignStore(campaign_id=campaign.id, store_id=s.id)
                           for s in (stores if stores is not None else [shop.store]))
        commit_unit_of_work()
        return campaign

    return create


@pytest.fixture
def create_riders() -> Callable:
    """Creator: `count` riders, each credited `points` by an operator's adjustment; quick (no password hashing),
    so a test can make hundreds. Returns the riders (committed)."""
    from metropoints.accrual.ledger import post_entry
    from metropoints.accrual.models import EntryKind
    from metropoints.core.models import Rider

    counter = iter(range(1, 1_000_000))

    def create(count: int = 1, *, points: int = 1000) -> list:
        riders = [Rider(phone=f"1380000{next(counter):04d}", password_hash="!", display_name=f"Rider {i}",
                        points_balance=0) for i in range(count)]
        db.session.add_all(riders)
        db.session.flush()
        if points:
            for rider in riders:
                post_entry(rider_id=rider.id, points=points, kind=EntryKind.adjustment, reason="test credit",
                           actor="test")
        commit_unit_of_work()
        return riders

    return create


@pytest.fixture
def create_rider_with_points(create_riders) -> Callable:
    """Creator: one rider with `points` (committed)."""

    def create(points: int = 1000):
        return create_riders(1, points=points)[0]

    return create


@pytest.fixture
def token_for() -> Callable:
    """Creator: a bearer token for a rider (kind rider) or a portal user (kind staff)."""
    from metropoints.core.models import Rider

    def create(subject) -> str:
        kind = TokenKind.rider if isinstance(subject, Rider) else TokenKind.staff
        raw, _ = issue_token(kind=kind, subject_id=subject.id, ttl=timedelta(days=1))
        commit_unit_of_work()
        return raw

    return create


@pytest.fixture
def books():
    """Checks that the books balance: every rider's balance is the sum of their entries, never negative; each
    campaign's stock plus its non-cancelled coupons is its total; one redemption entry per coupon and one refund
    per cancelled coupon."""
    from metropoints.accrual.models import EntryKind, LedgerEntry
    from metropoints.campaigns.models import Campaign
    from metropoints.core.models import Rider
    from metropoints.redemption.models import Coupon, CouponStatus

    def check() -> None:
        db.session.expire_all()
        sums = dict(db.session.execute(select(LedgerEntry.rider_id, func.sum(LedgerEntry.points))
                                       .group_by(LedgerEntry.rider_id)).all())
        for rider in db.session.scalars(select(Rider)):
            assert rider.points_balance == sums.get(rider.id, 0) >= 0, rider.id
        for campaign in db.session.scalars(select(Campaign)):
            held = db.session.scalar(select(func.count()).select_from(Coupon).where(
                Coupon.campaign_id == campaign.id, Coupon.status != CouponStatus.cancelled))
            assert campaign.stock_left + held == campaign.stock_total, campaign.id
        entries = {(kind, ref): count for kind, ref, count in db.session.execute(
            select(LedgerEntry.kind, LedgerEntry.ref, func.count())
            .where(LedgerEntry.kind.in_([EntryKind.redemption, EntryKind.refund]))
            .group_by(LedgerEntry.kind, LedgerEntry.ref))}
        coupons = db.session.scalars(select(Coupon)).all()
        expected = {(EntryKind.redemption, f"coupon:{c.id}"): 1 for c in coupons}
        expected |= {(EntryKind.refund, f"coupon:{c.id}"): 1 for c in coupons if c.status == CouponStatus.cancelled}
        assert entries == expected
        for coupon in coupons:
            spent = db.session.scalar(select(LedgerEntry.points).where(
                LedgerEntry.kind == EntryKind.redemption, LedgerEntry.ref == f"coupon:{coupon.id}"))
            assert spent == -coupon.points_spent

    return check


@pytest.fixture
def bought(app, create_shop, create_campaign, create_riders):
    """A shop, its campaign and a coupon a rider bought: (shop, campaign, rider, redemption)."""
    shop = create_shop()
    campaign = create_campaign(shop)
    rider = create_riders()[0]
    result = redeem(rider_id=rider.id, campaign_id=campaign.id)
    commit_unit_of_work()
    return shop, campaign, rider, result
