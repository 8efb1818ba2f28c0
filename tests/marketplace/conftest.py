"""Creators for the marketplace tests: operators, merchants in any status, stores, cashiers; a logged-in client;
campaigns, coupons and statements as rows for the dashboards' panels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest
from flask import g
from flask_babel import refresh

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Role
from metropoints.core.operations import create_user
from metropoints.core.timeutil import SERVICE_OFFSET, service_day, utcnow
from metropoints.marketplace import operations
from metropoints.marketplace.models import Category, MerchantStatus

PASSWORD = "password123"
STATION = "0101"  # 十三号街, line 1


def licence(n: int) -> str:
    """A well-formed 18-character licence number, distinct for each n."""
    return f"91210100MA{n:08d}"


def fresh_context() -> None:
    """Forget what the last request left on the test's app context, which outlives requests (unlike production):
    Babel's locale and Flask-Login's user of another test client."""
    refresh()
    g.pop("_login_user", None)


def page(client, path: str, method: str = "GET", **kwargs):
    """A request in English, from a fresh context (see fresh_context)."""
    fresh_context()
    headers = {"Accept-Language": "en", **kwargs.pop("headers", {})}
    return client.open(path, method=method, headers=headers, **kwargs)


def login(client, email: str, password: str = PASSWORD) -> None:
    """Log the test client in through core's login page."""
    fresh_context()
    reply = client.post("/login", data={"email": email, "password": password})
    assert reply.status_code == 302, reply.get_data(as_text=True)


@pytest.fixture
def create_operator() -> Callable:
    """Creator: a metro business team account (committed)."""
    counter = iter(range(1, 1_000_000))

    def create(email: str | None = None, password: str = PASSWORD):
        user = create_user(email=email or f"ops{next(counter)}@metro.example", password=password, role=Role.operator)
        commit_unit_of_work()
        return user

    return create


@pytest.fixture
def create_merchant(create_operator) -> Callable:
    """Creator: a merchant that applied and, by default, was approved (committed); its owner logs in with PASSWORD."""
    counter = iter(range(1, 1_000_000))
    operators = []

    def create(name: str | None = None, *, status: MerchantStatus = MerchantStatus.approved, email: str | None = None,
               category: Category = Category.dining):
        n = next(counter)
        merchant = operations.apply_merchant(
            name=name or f"Merchant {n}", category=category, contact_name=f"Contact {n}",
            contact_phone=f"1380000{n:04d}", licence_no=licence(n), email=email or f"owner{n}@shop.example",
            password=PASSWORD)
        if status != MerchantStatus.applied:
            if not operators:
                operators.append(create_operator())
            first = {"approved": "approve", "rejected": "reject", "suspended": "approve"}[status.value]
            operations.decide_merchant(actor=operators[0], merchant=merchant, decision=first, reason="test")
            if status == MerchantStatus.suspended:
                operations.decide_merchant(actor=operators[0], merchant=merchant, decision="suspend", reason="test")
        commit_unit_of_work()
        return merchant

    return create


@pytest.fixture
def create_store() -> Callable:
    """Creator: a store of a merchant, by its owner (committed)."""
    from metropoints.core.db import db
    from metropoints.core.models import User

    counter = iter(range(1, 1_000_000))

    def create(merchant, name: str | None = None, *, address: str | None = None, station_id: str = STATION):
        n = next(counter)
        store = operations.create_store(actor=db.session.get(User, merchant.owner_id), merchant=merchant,
                                        name=name or f"Store {n}", address=address or f"{n} Metro Road",
                                        station_id=station_id, opening_hours="10:00-22:00")
        commit_unit_of_work()
        return store

    return create


@pytest.fixture
def create_cashier() -> Callable:
    """Creator: an active cashier of a store with PASSWORD (committed); returns the StaffMember."""
    counter = iter(range(1, 1_000_000))

    def create(store, email: str | None = None):
        member = operations.create_cashier(email=email or f"cashier{next(counter)}@shop.example", store_id=store.id,
                                           password=PASSWORD, actor_label="test")
        commit_unit_of_work()
        return member

    return create


def noon(days_ago: int) -> datetime:
    """Noon in Shenyang `days_ago` service days before today, as UTC."""
    day = service_day(utcnow()) - timedelta(days=days_ago)
    return datetime.combine(day, time(12), tzinfo=SERVICE_OFFSET).astimezone(UTC)


@pytest.fixture
def create_campaign_row() -> Callable:
    """Creator: a campaign of a shop inserted directly, valid at its first store; approved and on sale now unless
    told (committed)."""
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus, CampaignStore

    counter = iter(range(1, 1_000_000))

    def create(shop, *, status: CampaignStatus = CampaignStatus.approved, **fields):
        now = utcnow().replace(microsecond=0)
        values = {"title": f"Dumpling voucher {next(counter)}", "category": Category.dining,
                  "benefit_type": BenefitType.voucher, "face_value_fen": 2000, "point_price": 100,
                  "stock_total": 100, "stock_left": 100, "per_rider_limit": 5, "valid_from": now - timedelta(days=100),
                  "valid_until": now + timedelta(days=30), "coupon_valid_days": 30, "decided_at": now}
        values.update(fields)
        campaign = Campaign(merchant_id=shop.merchant.id, status=status, **values)
        db.session.add(campaign)
        db.session.flush()
        db.session.add(CampaignStore(campaign_id=campaign.id, store_id=shop.store.id))
        commit_unit_of_work()
        return campaign

    return create


@pytest.fixture
def create_coupon(create_rider) -> Callable:
    """Creator: a coupon of a campaign bought `days_ago` (at noon in Shenyang) — issued, or used / cancelled
    `used_days_ago` — inserted directly (committed)."""
    from metropoints.redemption.models import Coupon, CouponStatus

    counter = iter(range(1, 1_000_000))
    riders = []

    def create(campaign, *, days_ago: int = 0, status: CouponStatus = CouponStatus.issued, points: int = 100,
               store=None, used_days_ago: int | None = None):
        if not riders:
            riders.append(create_rider())
        issued = noon(days_ago)
        later = noon(used_days_ago if used_days_ago is not None else days_ago) + timedelta(minutes=30)
        coupon = Coupon(campaign_id=campaign.id, rider_id=riders[0].id, code=f"test-code-{next(counter)}",
                        status=status, points_spent=points, issued_at=issued, expires_at=issued + timedelta(days=30),
                        used_at=later if status == CouponStatus.used else None,
                        used_store_id=store.id if status == CouponStatus.used else None,
                        cancelled_at=later if status == CouponStatus.cancelled else None)
        db.session.add(coupon)
        commit_unit_of_work()
        return coupon

    return create


@pytest.fixture
def create_statement() -> Callable:
    """Creator: a statement of a merchant for a month, in a status, due at a moment (committed)."""
    from metropoints.settlement.models import Statement, StatementStatus

    def create(merchant, period: date, *, status: StatementStatus = StatementStatus.issued, total_fen: int = 12345,
               due_at: datetime | None = None, invoice_number: str = ""):
        statement = Statement(merchant_id=merchant.id, period=period, status=status, currency="cny",
                              fee_per_coupon_fen=total_fen, coupon_count=1, coupon_fees_fen=total_fen,
                              monthly_fee_fen=0, total_fen=total_fen, invoice_number=invoice_number,
                              issued_at=utcnow(), due_at=due_at or utcnow() + timedelta(days=10))
        db.session.add(statement)
        commit_unit_of_work()
        return statement

    return create
