"""Migrating a filled database of the previous schema to the partitioned one keeps every row: per table the same
counts and sums, every month the rows name gets its partition, the keys that must stay unique are carried over, and
the way back keeps them too."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from metropoints.accrual.network import sync_stations
from metropoints.accrual.operations import create_partner, link_rider_ref, receive_trips
from metropoints.accrual.partitions import partition_months
from metropoints.app import create_app
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider
from metropoints.reports.rollups import differences
from tests.helpers import trip

ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://127.0.0.1:5432/test")
PREVIOUS_HEAD = "dcf9fc576333"

# The previous schema filled in SQL: three riders, 400 trips every other day back to about two years ago (one
# rider's references never linked, so its trips are held; every seventh trip capped), an entry per credited trip,
# coupons paid and one refunded, an adjustment and an expiry; balances set to the sum of the entries.
FILL = """
INSERT INTO partners (name, created_at) VALUES ('afc-feed', now());
INSERT INTO trip_batches (partner_id, channel, filename, status, rows_total, rows_done, credited, capped, duplicates,
    held, rejected, error, created_at) VALUES (1, 'api', '', 'done', 400, 400, 0, 0, 0, 0, 0, '', now());
INSERT INTO riders (phone, password_hash, display_name, points_balance, created_at)
    SELECT '1380000000' || g, 'x', 'rider ' || g, 0, now() FROM generate_series(1, 3) g;
INSERT INTO trips (source, trip_id, batch_id, rider_ref, rider_id, entry_station, exit_station, entered_at,
    exited_at, service_day, distance_m, rule_version_id, points, co2e_grams, status, credited_at)
    SELECT 'afc', 'm' || g, 1, 'card-' || g % 3, CASE WHEN g % 3 = 2 THEN NULL ELSE g % 3 + 1 END, '0109', '0114',
        (current_date - g * 2) + time '00:10', (current_date - g * 2) + time '00:30', current_date - g * 2, 6065, 1,
        CASE WHEN g % 3 = 2 THEN 0 WHEN g % 7 = 0 THEN 3 ELSE 6 END, 267,
        CASE WHEN g % 3 = 2 THEN 'held' WHEN g % 7 = 0 THEN 'capped' ELSE 'credited' END,
        CASE WHEN g % 3 = 2 THEN NULL ELSE now() END
    FROM generate_series(1, 400) g;
INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, trip_pk, rule_version_id, ref, reason, actor,
    balance_after)
    SELECT rider_id, now(), service_day, points, 'trip', id, 1, source || ':' || trip_id, '', '',
        SUM(points) OVER (PARTITION BY rider_id ORDER BY id)
    FROM trips WHERE points > 0 ORDER BY id;
INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after) VALUES
    (1, now(), current_date - 40, -5, 'redemption', 'coupon:1', '', '', 1),
    (3, now(), current_date - 35, -5, 'redemption', 'coupon:2', '', '', 1),
    (3, now(), current_date - 3, 5, 'refund', 'coupon:2', '', '', 1),
    (1, now(), current_date - 1, 7, 'adjustment', '', 'gate fault', 'ops@metro', 1),
    (1, now(), '2025-01-01', -3, 'expiry', '2025', '', 'expiry', 1);
UPDATE riders SET points_balance = (SELECT SUM(points) FROM ledger_entries e WHERE e.rider_id = riders.id);
"""
FIGURES = {
    "trips": "SELECT COUNT(*), SUM(id), SUM(points), SUM(distance_m), SUM(co2e_grams), COUNT(rider_id), "
             "COUNT(DISTINCT (source, trip_id)), MIN(service_day), MAX(service_day), "
             "SUM(extract(epoch FROM exited_at)), COUNT(*) FILTER (WHERE status = 'held') FROM trips",
    "ledger_entries": "SELECT COUNT(*), SUM(id), SUM(points), SUM(balance_after), SUM(trip_pk), MIN(earned_on), "
                      "MAX(earned_on), COUNT(*) FILTER (WHERE kind = 'redemption'), "
                      "COUNT(*) FILTER (WHERE kind = 'refund'), COUNT(*) FILTER (WHERE kind = 'expiry'), "
                      "string_agg(DISTINCT ref, ',' ORDER BY ref) FILTER (WHERE kind <> 'trip') FROM ledger_entries",
    "riders": "SELECT COUNT(*), SUM(points_balance) FROM riders",
    "balances": "SELECT COUNT(*) FROM riders r WHERE r.points_balance <> "
                "(SELECT COALESCE(SUM(points), 0) FROM ledger_entries e WHERE e.rider_id = r.id)",
    "sequences": "SELECT (SELECT last_value FROM trips_id_seq), (SELECT last_value FROM ledger_entries_id_seq)",
}


def figures() -> dict[str, tuple]:
    """Counts and sums per table, to compare before and after a migration (the read's transaction ended, so the
    migration's locks need not wait for it)."""
    found = {name: tuple(db.session.execute(text(sql)).one()) for name, sql in FIGURES.items()}
    db.session.rollback()
    return found


@pytest.fixture
def scratch_app() -> Iterator[Flask]:
    """An app on a database of its own (dropped afterwards), not yet migrated."""
    name = f"metropoints_migrate_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": ADMIN_URL.rsplit("/", 1)[0] + "/" + name,
                      "SECRET_KEY": "test-secret", "RATELIMIT_STORAGE_URI": "memory://"})
    try:
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrating_a_filled_database_keeps_every_row(scratch_app):
    """Counts, sums, balances and sequences are the same after the upgrade as before it, and after the way back;
    each row sits in its month's partition; the trip and ledger keys are carried over, so a resend of an old trip
    is a duplicate and new ids follow the old ones."""
    upgrade(revision=PREVIOUS_HEAD)
    for statement in FILL.split(";"):
        if statement.strip():
            db.session.execute(text(statement))
    commit_unit_of_work()
    before = figures()
    assert before["trips"][0] == 400 and before["balances"] == (0,)

    upgrade()
    assert figures() == before
    months = partition_months("trips")
    assert months[0] <= f"{before['trips'][7]:%Y_%m}" and f"{before['trips'][8]:%Y_%m}" in months
    assert db.session.scalar(text("SELECT COUNT(*) FROM trips WHERE tableoid::regclass::text <> "
                                  "'trips_' || to_char(service_day, 'YYYY_MM')")) == 0
    assert db.session.scalar(text("SELECT COUNT(*) FROM ledger_entries WHERE tableoid::regclass::text <> "
                                  "'ledger_entries_' || to_char(earned_on, 'YYYY_MM')")) == 0
    assert db.session.execute(text("SELECT COUNT(*), SUM(trip_pk) FROM trip_keys")).one() == (400, before["trips"][1])
    assert db.session.scalar(text("SELECT COUNT(*) FROM ledger_keys")) == 4
    # The rollups the later migrations filled from these rows agree with them (credits per rider over three years).
    assert differences() == []
    assert db.session.scalar(text("SELECT COUNT(DISTINCT year) FROM rollup_rider_years")) == 3

    sync_stations()
    partner, _ = create_partner(name="afc-after", actor_label="test")
    link_rider_ref(rider=db.session.get(Rider, 1), source="afc", ref="card-0")
    result = receive_trips(partner=partner, payload={"trips": [trip("m3", ref="card-0"), trip("new-1", ref="card-0")]})
    commit_unit_of_work()
    assert (result.duplicates, result.credited) == (1, 1)
    assert db.session.scalar(text("SELECT id FROM trips WHERE trip_id = 'new-1'")) > before["sequences"][0]
    assert differences() == []  # and kept since, the credits per year by the ledger's trigger

    after = figures()
    downgrade(revision=PREVIOUS_HEAD)
    assert figures() == after
    assert db.session.scalar(text("SELECT to_regclass('trip_keys')")) is None
