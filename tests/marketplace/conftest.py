"""Creators for the marketplace tests: operators, merchants in any status, stores, cashiers; a logged-in client."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import g
from flask_babel import refresh

from metropoints.core.db import commit_unit_of_work
from metropoints.core.models import Role
from metropoints.core.operations import create_user
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
