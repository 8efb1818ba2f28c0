"""Upgrading a filled database of the previous schema fills the rollups from its rows: its figures stay the same."""

from __future__ import annotations

import enum
from datetime import timedelta
from pathlib import Path

import psycopg
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import MetaData, Table, insert, text

import metropoints
from metropoints.accrual.network import sync_stations
from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import service_day, utcnow
from metropoints.marketplace.models import Category, Merchant, MerchantStatus
from metropoints.redemption.models import Coupon, CouponStatus
from metropoints.reports import queries, rollups
from tests.conftest import ADMIN_URL, RUN_ID, make_app, pg_url

ROLLUPS = "e53ce7083510"
# The schema just before the rollups came: whatever revision the rollups' migration follows.
PREVIOUS = ScriptDirectory(str(Path(metropoints.__file__).parent / "migrations")).get_revision(ROLLUPS).down_revision


def insert_old(model: type, **values) -> int:
    """Insert a row as the database's (previous) schema has the table: the columns it reflects, given `values` and
    the model's scalar defaults for the rest; the row's id. The model itself may carry columns of later migrations."""
    table = Table(model.__tablename__, MetaData(), autoload_with=db.session.connection())
    for column in model.__table__.columns:
        default = column.default
        if column.name in table.c and column.name not in values and default is not None and default.is_scalar:
            values[column.name] = default.arg
    values = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in values.items()}
    return db.session.execute(insert(table).values(**values).returning(table.c.id)).scalar_one()


def fill_previous_schema() -> None:
    """Riders, trips (credited, capped, held) over several days and coupons in every state, as rows."""
    now = utcnow()
    db.session.execute(text(
        "INSERT INTO riders (phone, password_hash, display_name, points_balance, created_at) "
        "SELECT '1500000' || lpad(g::text, 4, '0'), 'x', 'r' || g, 0, :now - g * interval '7 hours' "
        "FROM generate_series(1, 40) g"), {"now": now})
    db.session.execute(text(
        "INSERT INTO trips (source, trip_id, batch_id, rider_ref, rider_id, entry_station, exit_station, entered_at, "
        "exited_at, service_day, distance_m, rule_version_id, points, co2e_grams, status, credited_at) "
        "SELECT 'afc', 't' || g, 1, 'card', CASE WHEN g % 7 = 0 THEN NULL ELSE 1 + g % 40 END, '0109', '0114', "
        ":now - g * interval '3 hours' - interval '20 minutes', :now - g * interval '3 hours', "
        "CAST(timezone('Asia/Shanghai', :now - g * interval '3 hours') AS date), 6065, 1, "
        "CASE WHEN g % 7 = 0 THEN 0 WHEN g % 5 = 0 THEN 2 ELSE 6 END, 267, "
        "CASE WHEN g % 7 = 0 THEN 'held' WHEN g % 5 = 0 THEN 'capped' ELSE 'credited' END, :now "
        "FROM generate_series(1, 200) g"), {"now": now})
    # In SQL, as the previous schema has it: the User model carries columns of later migrations.
    owner_id = db.session.execute(text(
        "INSERT INTO users (email, password_hash, role, display_name, active, created_at, locale) "
        "VALUES ('owner@shop.example', 'x', 'merchant_owner', 'Owner', true, :now, 'zh') RETURNING id"),
        {"now": now}).scalar_one()
    shop_id = insert_old(Merchant, name="Shop", category=Category.dining, contact_name="Li", contact_phone="1",
                         licence_no="L1", status=MerchantStatus.approved, owner_id=owner_id, applied_at=now,
                         decided_at=now)
    campaign_id = insert_old(Campaign, merchant_id=shop_id, status=CampaignStatus.approved, title="Tea",
                             category=Category.dining, benefit_type=BenefitType.free_item, point_price=5,
                             stock_total=99, stock_left=90, per_rider_limit=9, valid_from=now - timedelta(days=20),
                             valid_until=now + timedelta(days=9), coupon_valid_days=2, created_at=now)
    for n, status in enumerate([CouponStatus.issued, CouponStatus.used, CouponStatus.cancelled, CouponStatus.expired]
                               * 3):
        issued = now - timedelta(days=n, hours=n)
        later = issued + timedelta(hours=5)
        insert_old(Coupon, campaign_id=campaign_id, rider_id=1 + n, code=f"c{n}", counter_code=f"{n:012d}",
                   status=status, points_spent=5, issued_at=issued, expires_at=issued + timedelta(days=2),
                   used_at=later if status == CouponStatus.used else None,
                   cancelled_at=later if status == CouponStatus.cancelled else None,
                   expired_at=later if status == CouponStatus.expired else None)
    commit_unit_of_work()


def test_an_upgraded_database_keeps_its_figures():
    """The migration that adds the rollups fills them from the rows already there: verify finds no difference, and
    the KPI figures read from the rollups are the sums of the old rows."""
    name = f"metropoints_migrate_{RUN_ID}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    app = make_app(pg_url(name))
    try:
        with app.app_context():
            upgrade(revision=PREVIOUS)
            sync_stations()  # the accrual spine's migration seeds the default rule version
            commit_unit_of_work()
            fill_previous_schema()
            upgrade()
            assert rollups.differences() == []
            k = queries.kpis(365)
            raw = db.session.execute(text(
                "SELECT (SELECT COUNT(*) FROM riders), (SELECT SUM(points) FROM trips), (SELECT SUM(co2e_grams) "
                "FROM trips WHERE status <> 'held'), (SELECT COUNT(*) FROM coupons)")).one()
            assert (k.riders, k.points_issued, k.co2e_grams, k.redemptions) == tuple(raw)
            assert k.riders_series.values[-1] == 40 and k.riders_series.days[-1] == service_day(utcnow())
            db.session.remove()
            db.engine.dispose()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
