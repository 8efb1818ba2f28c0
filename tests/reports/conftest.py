"""Creators for the back office's tests: portal users logged in, merchants and campaigns as rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Role
from metropoints.core.operations import create_user
from metropoints.core.timeutil import utcnow

PASSWORD = "correct-horse"


@pytest.fixture
def create_portal_user() -> Callable:
    """Creator: a portal account of a role (committed)."""
    counter = iter(range(1, 1_000_000))

    def create(role: Role = Role.operator, email: str | None = None):
        user = create_user(email=email or f"{role.value}-{next(counter)}@metro.example", password=PASSWORD, role=role)
        commit_unit_of_work()
        return user

    return create


@pytest.fixture
def login(client) -> Callable:
    """Log the test client in as a portal user."""

    def log_in(user) -> None:
        reply = client.post("/login", data={"email": user.email, "password": PASSWORD})
        assert reply.status_code == 302, reply.get_data(as_text=True)

    return log_in


@pytest.fixture
def operator(create_portal_user, login):
    """An operator of the metro business team, logged in on the test client."""
    user = create_portal_user(Role.operator, email="ops@metro.example")
    login(user)
    return user


@pytest.fixture
def create_merchant(create_portal_user) -> Callable:
    """Creator: a merchant row with its owner account, in a status, decided at a moment (committed)."""
    from metropoints.marketplace.models import Category, Merchant, MerchantStatus

    counter = iter(range(1, 1_000_000))

    def create(status: MerchantStatus = MerchantStatus.approved, decided_at: datetime | None = None):
        n = next(counter)
        owner = create_portal_user(Role.merchant_owner)
        merchant = Merchant(name=f"Shop {n}", category=Category.dining, contact_name="Li", contact_phone="13800000000",
                            licence_no=f"LIC{n:06d}", status=status, owner_id=owner.id,
                            decided_at=decided_at if decided_at or status == MerchantStatus.applied else utcnow())
        db.session.add(merchant)
        commit_unit_of_work()
        return merchant

    return create


@pytest.fixture
def create_campaign() -> Callable:
    """Creator: a campaign row of a merchant (committed); by default approved, on sale now, with stock."""
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus
    from metropoints.marketplace.models import Category

    def create(merchant, *, status: CampaignStatus = CampaignStatus.approved, stock_left: int = 10,
               valid_from: datetime | None = None, valid_until: datetime | None = None,
               decided_at: datetime | None = None):
        now = utcnow()
        campaign = Campaign(merchant_id=merchant.id, status=status, title="Coffee", category=Category.dining,
                            benefit_type=BenefitType.free_item, point_price=50, stock_total=10, stock_left=stock_left,
                            per_rider_limit=1, valid_from=valid_from or now - timedelta(days=1),
                            valid_until=valid_until or now + timedelta(days=30), coupon_valid_days=30,
                            decided_at=decided_at or now)
        db.session.add(campaign)
        commit_unit_of_work()
        return campaign

    return create


@pytest.fixture
def get_en(client) -> Callable:
    """GET a page in English. Babel's per-context locale is dropped first: the test's app context outlives requests."""
    from flask_babel import refresh

    def get(path: str):
        refresh()
        return client.get(path, headers={"Accept-Language": "en"})

    return get


@pytest.fixture
def post_en(client) -> Callable:
    """POST a form in English (see get_en)."""
    from flask_babel import refresh

    def post(path: str, data: dict):
        refresh()
        return client.post(path, data=data, headers={"Accept-Language": "en"})

    return post
