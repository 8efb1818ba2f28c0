"""Creators for campaign tests: merchants with an owner, stores, cashiers, operators, campaigns; logging in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Role
from metropoints.core.operations import create_user
from metropoints.core.timeutil import utcnow
from tests.campaigns import PASSWORD, STATION_A


@pytest.fixture
def create_operator() -> Callable:
    """Creator: a metro business team account (committed)."""
    counter = iter(range(1, 1_000_000))

    def create(email: str | None = None):
        user = create_user(email=email or f"ops{next(counter)}@metro.example", password=PASSWORD, role=Role.operator)
        commit_unit_of_work()
        return user

    return create


@pytest.fixture
def create_merchant() -> Callable:
    """Creator: a merchant (approved unless told) with its owner account and owner membership; returns
    (merchant, owner)."""
    from metropoints.marketplace.models import Category, Merchant, MerchantStatus, StaffMember

    counter = iter(range(1, 1_000_000))

    def create(*, name: str | None = None, status: MerchantStatus = MerchantStatus.approved):
        n = next(counter)
        owner = create_user(email=f"owner{n}@shop.example", password=PASSWORD, role=Role.merchant_owner)
        merchant = Merchant(name=name or f"Shop {n}", category=Category.dining, contact_name="Li",
                            contact_phone="13900000000", licence_no=f"LIC{n:08d}", status=status, owner_id=owner.id)
        db.session.add(merchant)
        db.session.flush()
        db.session.add(StaffMember(user_id=owner.id, merchant_id=merchant.id, is_owner=True, accepted_at=utcnow()))
        commit_unit_of_work()
        return merchant, owner

    return create


@pytest.fixture
def create_store() -> Callable:
    """Creator: a store of a merchant near a station."""
    from metropoints.marketplace.models import Store

    counter = iter(range(1, 1_000_000))

    def create(merchant, *, station_id: str = STATION_A, name: str | None = None, active: bool = True):
        n = next(counter)
        store = Store(merchant_id=merchant.id, name=name or f"Store {n}", address=f"{n} Zhongshan Road",
                      station_id=station_id, active=active)
        db.session.add(store)
        commit_unit_of_work()
        return store

    return create


@pytest.fixture
def create_cashier() -> Callable:
    """Creator: a cashier account bound to one store of a merchant."""
    from metropoints.marketplace.models import StaffMember

    counter = iter(range(1, 1_000_000))

    def create(merchant, store):
        user = create_user(email=f"cashier{next(counter)}@shop.example", password=PASSWORD, role=Role.cashier)
        db.session.add(StaffMember(user_id=user.id, merchant_id=merchant.id, store_id=store.id, is_owner=False))
        commit_unit_of_work()
        return user

    return create


@pytest.fixture
def create_campaign() -> Callable:
    """Creator: a campaign inserted directly (approved and on sale now unless told), valid at the given stores."""
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus, CampaignStore
    from metropoints.marketplace.models import Category

    counter = iter(range(1, 1_000_000))

    def create(merchant, stores, *, status: CampaignStatus = CampaignStatus.approved, **fields):
        now = utcnow().replace(second=0, microsecond=0)  # minute-aligned, as the editor's times are
        values = {"title": f"Coffee voucher {next(counter)}", "category": Category.dining,
                  "benefit_type": BenefitType.voucher, "face_value_fen": 2000, "point_price": 400,
                  "stock_total": 100, "per_rider_limit": 2, "valid_from": now - timedelta(days=1),
                  "valid_until": now + timedelta(days=30), "coupon_valid_days": 30}
        values.update(fields)
        values.setdefault("stock_left", values["stock_total"])
        campaign = Campaign(merchant_id=merchant.id, status=status, **values)
        db.session.add(campaign)
        db.session.flush()
        db.session.add_all(CampaignStore(campaign_id=campaign.id, store_id=s.id) for s in stores)
        commit_unit_of_work()
        return campaign

    return create


@pytest.fixture
def login(client) -> Callable:
    """Log a portal user in through the login form (logging out whoever was in)."""

    def log_in(user) -> None:
        client.post("/logout")
        reply = client.post("/login", data={"email": user.email, "password": PASSWORD})
        assert reply.status_code == 302, reply.get_data(as_text=True)

    return log_in
