"""Fixtures: a PostgreSQL database of this run's own, migrated once; the app, client and CLI runner; creators.

Every test starts from empty tables (the stations and the default rule version put back), so tests never see
each other's rows, and concurrent tests commit for real.
"""

from __future__ import annotations

import email
import email.policy
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg
import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text

from metropoints.app import create_app
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.extensions import limiter

ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
KEEP_TABLES = {"alembic_version", "stations"}
TESTS_WRITE_FROM = date(2023, 1, 1)  # the oldest month a test writes trips or ledger entries in
SHOP_PASSWORD = "password123"  # every portal user the shop creator makes


def pg_url(name: str) -> str:
    """The URL of database `name` on the admin URL's server."""
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"metropoints_test_{RUN_ID}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_app(database_url: str, **extra) -> Flask:
    """An app for tests on the given database; jobs inline unless REDIS_URL is given."""
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
        "QUEUE_PREFIX": f"mp-test-{RUN_ID}",
        "RATELIMIT_STORAGE_URI": "memory://",
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 10, "max_overflow": 20},
        # No provider unless a test starts one (tests/settlement): port 9 refuses at once, whatever runs on 8420.
        "PAYMENT_API_BASE": "http://127.0.0.1:9",
        "PAYMENT_TIMEOUT_SECONDS": 2,
        # Operators of other packages' tests sign in with the password only; tests/core/test_twofactor*.py turn
        # this off (and check that production requires a second factor of every operator).
        "TESTING_OPERATORS_WITHOUT_SECOND_FACTOR": True,
        # Most tests' riders ride the same two stations minutes apart, over and over; tests/accrual/test_modes*.py
        # and test_review.py turn the review of farmed-looking trips back on (the default outside tests).
        "REVIEW_FARMED_TRIPS": False,
    }
    config.update(extra)
    return create_app(config)


@pytest.fixture(scope="session")
def migrated_app(database_url: str) -> Iterator[Flask]:
    """The app on this run's database, migrated to head through the real migrations."""
    app = make_app(database_url)
    with app.app_context():
        upgrade()
        from metropoints.accrual.network import sync_stations
        from metropoints.accrual.partitions import create_partitions

        sync_stations()
        # Tests write history back to 2023 (ledger entries earned then, expiries of those years).
        create_partitions(since=TESTS_WRITE_FROM)
        commit_unit_of_work()
    yield app
    with app.app_context():
        db.engine.dispose()


# Every table of the schema but the kept ones (monthly partitions included), and each one's id sequence.
_TABLES = text("SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname <> ALL(:keep)")
_RESTART_SEQUENCES = text("""
DO $$ DECLARE s record; BEGIN
  FOR s IN SELECT c.oid::regclass::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind = 'S' LOOP
    EXECUTE 'ALTER SEQUENCE ' || s.name || ' RESTART';
  END LOOP;
END $$""")


def empty_tables() -> None:
    """Empty every table a test may have written (the stations and the migration version kept) and restart the ids.
    Only the tables that hold rows are truncated: the trips and the ledger have a partition per month, and
    truncating a hundred empty ones for every test would cost more than the tests themselves."""
    tables = db.session.execute(_TABLES, {"keep": list(KEEP_TABLES)}).scalars().all()
    probe = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {name})" for name in tables)
    full = db.session.execute(text(probe)).scalars().all()
    if full:
        db.session.execute(text(f"TRUNCATE {', '.join(full)} CASCADE"))
    db.session.execute(_RESTART_SEQUENCES)


@pytest.fixture
def app(migrated_app: Flask) -> Iterator[Flask]:
    """The app, with empty tables and the default rule version, inside an app context."""
    from metropoints.accrual.rules import ensure_default_rules

    with migrated_app.app_context():
        empty_tables()
        ensure_default_rules()
        commit_unit_of_work()
        limiter.reset()
        yield migrated_app
        db.session.rollback()
        db.session.remove()


@pytest.fixture
def sqlite_app(tmp_path) -> Iterator[Flask]:
    """An app on a fresh SQLite file, migrated by the real migrations, stations loaded; engine disposed after."""
    from metropoints.accrual.network import sync_stations

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite:///" + str(tmp_path / "x.sqlite"),
                      "SECRET_KEY": "t", "WTF_CSRF_ENABLED": False, "RATELIMIT_STORAGE_URI": "memory://",
                      "TESTING_OPERATORS_WITHOUT_SECOND_FACTOR": True, "REVIEW_FARMED_TRIPS": False})
    with app.app_context():
        try:
            upgrade()
            sync_stations()
            commit_unit_of_work()
            yield app
        finally:
            db.session.rollback()
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def client(app: Flask):
    """A test client."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    """A CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def redis_app(app: Flask) -> Iterator[Flask]:
    """The same app with REDIS_URL set, so jobs go to real rq queues (emptied afterwards)."""
    from metropoints.core.jobs import QUEUE_NAMES, get_queue

    app.config["REDIS_URL"] = REDIS_URL
    try:
        yield app
    finally:
        for name in QUEUE_NAMES:
            get_queue(name).empty()
        app.config["REDIS_URL"] = None


@pytest.fixture
def create_rider() -> Callable:
    """Creator: a rider (committed), optionally with linked references."""
    from metropoints.accrual.operations import link_rider_ref
    from metropoints.core.operations import register_rider

    counter = iter(range(1, 1_000_000))

    def create(*, phone: str | None = None, password: str = "password123", links: tuple = (), name: str | None = None):
        rider = register_rider(phone=phone or f"1390000{next(counter):04d}", password=password, display_name=name)
        for source, ref in links:
            link_rider_ref(rider=rider, source=source, ref=ref)
        commit_unit_of_work()
        return rider

    return create


@pytest.fixture
def rider_token() -> Callable:
    """Creator: a bearer token for a rider."""
    from metropoints.core.models import TokenKind
    from metropoints.core.operations import issue_token

    def create(rider) -> str:
        raw, _ = issue_token(kind=TokenKind.rider, subject_id=rider.id, ttl=timedelta(days=1))
        commit_unit_of_work()
        return raw

    return create


@pytest.fixture
def create_partner() -> Callable:
    """Creator: a trip-feed partner; returns (partner, raw token)."""
    from metropoints.accrual.operations import create_partner as make

    counter = iter(range(1, 1_000_000))

    def create(name: str | None = None):
        partner, token = make(name=name or f"partner-{next(counter)}", actor_label="test")
        commit_unit_of_work()
        return partner, token

    return create


@dataclass
class Shop:
    """An approved merchant with its owner, two stores and a cashier at each."""

    merchant: object
    owner: object
    store: object  # the campaigns' store
    other_store: object  # a store of the same merchant where the campaigns are not valid
    cashier: object  # at `store`
    other_cashier: object  # at `other_store`


@pytest.fixture
def create_shop() -> Callable:
    """Creator: an approved (unless told) merchant, its owner, two stores and a cashier at each (committed)."""
    from metropoints.core.models import Role
    from metropoints.core.operations import create_user
    from metropoints.core.timeutil import utcnow
    from metropoints.marketplace.models import Category, Merchant, MerchantStatus, StaffMember, Store

    counter = iter(range(1, 1_000_000))

    def create(*, status: MerchantStatus = MerchantStatus.approved) -> Shop:
        n = next(counter)
        owner = create_user(email=f"owner{n}@shop.example", password=SHOP_PASSWORD, role=Role.merchant_owner,
                            display_name=f"Owner {n}")
        merchant = Merchant(name=f"Shop {n}", category=Category.dining, contact_name="Li", contact_phone="13900000000",
                            licence_no=f"LIC{n:08d}", status=status, owner_id=owner.id)
        db.session.add(merchant)
        db.session.flush()
        db.session.add(StaffMember(user_id=owner.id, merchant_id=merchant.id, is_owner=True, accepted_at=utcnow()))
        stores = [Store(merchant_id=merchant.id, name=f"Store {n}{s}", address=f"{n} Zhongshan Road",
                        station_id=station) for s, station in (("a", "0109"), ("b", "0114"))]
        db.session.add_all(stores)
        db.session.flush()
        cashiers = []
        for store in stores:
            user = create_user(email=f"cashier{n}{store.id}@shop.example", password=SHOP_PASSWORD, role=Role.cashier)
            db.session.add(StaffMember(user_id=user.id, merchant_id=merchant.id, store_id=store.id,
                                       accepted_at=utcnow()))
            cashiers.append(user)
        commit_unit_of_work()
        return Shop(merchant, owner, stores[0], stores[1], cashiers[0], cashiers[1])

    return create


class Clock:
    """The app's clock (core.timeutil.utcnow), moved by the test."""

    def __init__(self) -> None:
        """Start at the real time, 5 seconds into a 30-second step (a TOTP code then holds for a while)."""
        from metropoints.core.timeutil import utcnow

        now = utcnow().replace(microsecond=0)
        self.now = now - timedelta(seconds=now.second % 30) + timedelta(seconds=5)

    def __call__(self) -> datetime:
        """The current time, as the app reads it."""
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward."""
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """A controllable clock for sessions, second-factor codes and the half-signed-in state."""
    from metropoints.core import timeutil

    moving = Clock()
    monkeypatch.setattr(timeutil, "utcnow", moving)
    return moving


@pytest.fixture
def strict(app: Flask) -> Iterator[None]:
    """Operators need a second factor, as in production (make_app relaxes it for other packages' tests)."""
    app.config["TESTING_OPERATORS_WITHOUT_SECOND_FACTOR"] = False
    try:
        yield
    finally:
        app.config["TESTING_OPERATORS_WITHOUT_SECOND_FACTOR"] = True


def auth(token: str) -> dict[str, str]:
    """The Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Inbox:
    """What a loopback SMTP server received: each message parsed, in arrival order."""

    messages: list = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        """Keep the message."""
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def to(self, address: str) -> list:
        """The messages sent to one address."""
        return [m for m in self.messages if address in m["To"]]

    def wait(self, count: int = 1, timeout: float = 10) -> list:
        """The messages, once at least `count` have arrived (sending is after the commit, maybe on a worker)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp_server(app: Flask) -> Iterator[Inbox]:
    """A real SMTP server (aiosmtpd) on a loopback port, and the app sending its mail there."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    saved = {key: app.config.get(key) for key in ("MAIL_SERVER", "MAIL_PORT", "MAIL_SUPPRESS_SEND")}
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_SUPPRESS_SEND=False)
    try:
        yield inbox
    finally:
        app.config.update(saved)
        controller.stop()
