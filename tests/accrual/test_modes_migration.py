"""Migrating a filled database to green modes keeps every trip and rule version (metro, the default) and the way
back keeps them too; a database with trips of the new modes refuses to go back rather than lose them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from metropoints.accrual.network import sync_stations
from metropoints.accrual.operations import create_partner, link_rider_ref, receive_trips
from metropoints.accrual.partitions import create_partitions
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider
from metropoints.core.timeutil import service_day, utcnow
from tests.accrual.test_partition_migration import FILL, figures, scratch_app  # noqa: F401 (a fixture)
from tests.helpers import trip

PREVIOUS_HEAD = "5c2e8b7d4f90"


def test_green_modes_migration_keeps_every_row_both_ways(scratch_app):  # noqa: F811
    """After the upgrade every old trip is a metro trip with no reason and every old rule version metro's, the other
    modes have their seeded versions with sources, and metro trips still credit; the way back keeps the figures."""
    upgrade(revision=PREVIOUS_HEAD)
    create_partitions(since=service_day(utcnow()) - timedelta(days=820))  # the fill goes 800 days back
    for statement in FILL.split(";"):
        if statement.strip():
            db.session.execute(text(statement))
    db.session.execute(text("INSERT INTO trip_keys (source, trip_id, trip_pk, service_day) "
                            "SELECT source, trip_id, id, service_day FROM trips"))
    commit_unit_of_work()
    before = figures()

    upgrade()
    assert figures() == before
    assert db.session.execute(text("SELECT COUNT(*) FILTER (WHERE mode = 'metro' AND reason = ''), COUNT(*) "
                                   "FROM trips")).one() == (400, 400)
    seeded = dict(db.session.execute(text("SELECT mode, factor_source FROM rule_versions")).tuples().all())
    assert set(seeded) == {"metro", "bus", "bike", "walk"} and all(seeded.values())
    sync_stations()
    partner, _ = create_partner(name="afc-after", actor_label="test")
    link_rider_ref(rider=db.session.get(Rider, 1), source="afc", ref="card-0")
    result = receive_trips(partner=partner, payload={"trips": [trip("m3", ref="card-0"), trip("new-1", ref="card-0")]})
    commit_unit_of_work()
    assert (result.duplicates, result.credited) == (1, 1)

    after = figures()
    downgrade(revision=PREVIOUS_HEAD)
    assert figures() == after
    assert db.session.scalar(text("SELECT COUNT(*) FROM rule_versions")) == 1
    assert db.session.scalar(text("SELECT to_regclass('trip_reviews')")) is None
    db.session.rollback()

    upgrade()
    yesterday = str(service_day(utcnow()) - timedelta(days=1))
    receive_trips(partner=partner, payload={"trips": [{"trip_id": "w1", "source": "health", "rider_ref": "x",
                                                       "mode": "walk", "day": yesterday, "steps": 5000}]})
    commit_unit_of_work()
    with pytest.raises(SystemExit):  # Flask-Migrate logs the migration's refusal and exits
        downgrade(revision=PREVIOUS_HEAD)
    db.session.rollback()
    assert db.session.scalar(text("SELECT COUNT(*) FROM trips WHERE mode = 'walk'")) == 1
