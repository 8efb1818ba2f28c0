"""Reads that may be seconds stale go to a real streaming replica; writes and read-your-writes stay on the primary;
a replica that lags past the setting, or is down (before or during a request), leaves the reads to the primary and
the log says so."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text

from metropoints.accrual.operations import receive_trips
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.replica import drop_replica, read_replica, replica
from metropoints.kiosk.operations import create_kiosk
from tests.conftest import auth
from tests.helpers import trip


@pytest.fixture
def replica_app(app, streaming_replica, database_url):
    """The app with REPLICA_DATABASE_URL pointing at this run's database on the replica, checked on every use."""
    app.config.update(REPLICA_DATABASE_URL=streaming_replica.url(database_url.rsplit("/", 1)[1]),
                      REPLICA_CHECK_SECONDS=0, REPLICA_MAX_LAG_SECONDS=10)
    try:
        yield app
    finally:
        drop_replica()
        app.config["REPLICA_DATABASE_URL"] = None


@contextmanager
def sent_to() -> Iterator[dict[str, list[str]]]:
    """The statements the app sends while the block runs, by server: "primary" and "replica"."""
    sent: dict[str, list[str]] = {"primary": [], "replica": []}
    engines = {"primary": db.engine, "replica": replica().engine}
    listeners = []
    for name, engine in engines.items():
        def record(conn, cursor, statement, parameters, context, executemany, name=name) -> None:
            """Keep a statement under the server it went to."""
            if "pg_stat_wal_receiver" not in statement:  # the replica's health check
                sent[name].append(statement)
        event.listen(engine, "before_cursor_execute", record)
        listeners.append((engine, record))
    try:
        yield sent
    finally:
        for engine, record in listeners:
            event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def city(replica_app, create_rider, create_partner, streaming_replica):
    """A rider with a credited trip; the replica caught up."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner(name="afc")
    receive_trips(partner=partner, payload={"trips": [trip("t1")]})
    commit_unit_of_work()
    streaming_replica.catch_up()
    return rider


def test_the_replica_is_a_standby(replica_app, streaming_replica):
    """Inside read_replica() the session reads from a server in recovery (the streaming replica); outside, from the
    primary."""
    streaming_replica.catch_up()
    with read_replica() as on_replica:
        assert on_replica and db.session.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
    db.session.rollback()
    assert db.session.execute(text("SELECT pg_is_in_recovery()")).scalar() is False


def test_stale_ok_pages_read_from_the_replica(city, client, login, create_operator, streaming_replica):
    """The KPI page, the audit log and the catalogue read what they show from the replica (the operator's session is
    still checked on the primary), and show what the replica has replayed."""
    operator = create_operator()
    login(operator)
    streaming_replica.catch_up()
    with sent_to() as sent:
        reply = client.get("/backoffice/?days=7", headers={"Accept-Language": "en"})
    assert reply.status_code == 200 and 'data-kpi="riders">1<' in reply.get_data(as_text=True)
    assert any("rollup_trip_days" in s for s in sent["replica"])
    assert not any("rollup_" in s for s in sent["primary"])
    for path in ("/backoffice/audit", "/api/v1/catalog"):
        with sent_to() as sent:
            assert client.get(path).status_code == 200
        assert sent["replica"], path


def test_the_kiosk_feed_and_the_owners_activity_read_from_the_replica(city, client, login, create_shop,
                                                                       streaming_replica):
    """The kiosk feed is built from the replica (its token is checked on the primary); the owner's activity page and
    its streamed CSV read the replica too."""
    from metropoints.kiosk.cache import drop_app_caches

    _, token = create_kiosk(station_id="0109", label="hall", actor_label="test")
    shop = create_shop()
    commit_unit_of_work()
    streaming_replica.catch_up()
    drop_app_caches()  # a feed or city figures an earlier test of this process cached would be served without a read
    with sent_to() as sent:
        reply = client.get("/api/v1/kiosk/feed", headers=auth(token))
    assert reply.status_code == 200 and reply.get_json()["city"]["points_total"] == 6
    assert any("rollup_trip_days" in s for s in sent["replica"])
    assert any("api_tokens" in s for s in sent["primary"]) and not any("api_tokens" in s for s in sent["replica"])
    login(shop.owner)
    for path in ("/portal/activity", "/portal/activity.csv"):
        with sent_to() as sent:
            reply = client.get(path)
            assert reply.status_code == 200 and reply.get_data()
        assert any("coupon" in s for s in sent["replica"]), path
        assert not any("coupon" in s for s in sent["primary"]), path


def test_writes_and_read_your_writes_use_the_primary(city, client, rider_token):
    """A rider's balance (read right after a redemption or a trip) and the trip feed never touch the replica."""
    token = rider_token(city)
    with sent_to() as sent:
        assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
        assert client.get("/api/v1/me/ledger", headers=auth(token)).status_code == 200
    assert sent["primary"] and not sent["replica"]


def test_a_lagging_replica_leaves_reads_to_the_primary(city, client, login, create_operator, create_rider,
                                                        streaming_replica, replica_app, caplog):
    """With its replay paused, the replica falls behind the primary; past REPLICA_MAX_LAG_SECONDS the pages read from
    the primary (and show the newest rows), and the log says why; caught up, it serves them again."""
    operator = create_operator()
    login(operator)
    replica_app.config["REPLICA_MAX_LAG_SECONDS"] = 0.5
    drop_replica()
    streaming_replica.execute("SELECT pg_wal_replay_pause()")
    try:
        create_rider()  # a second rider, on the primary only
        time.sleep(1.0)
        with caplog.at_level(logging.WARNING, logger="metropoints.core.replica"), sent_to() as sent:
            reply = client.get("/backoffice/?days=7", headers={"Accept-Language": "en"})
        assert reply.status_code == 200 and 'data-kpi="riders">2<' in reply.get_data(as_text=True)
        assert not sent["replica"]
        assert "lags" in caplog.text and "reading from the primary" in caplog.text
    finally:
        streaming_replica.execute("SELECT pg_wal_replay_resume()")
    streaming_replica.catch_up()
    replica_app.config["REPLICA_MAX_LAG_SECONDS"] = 10
    drop_replica()
    with sent_to() as sent:
        assert client.get("/backoffice/?days=7").status_code == 200
    assert sent["replica"]


def test_a_replica_stopped_mid_run_leaves_reads_to_the_primary(city, client, login, create_operator,
                                                                streaming_replica, replica_app, caplog):
    """The replica stops while the app runs: a request that finds it down before reading, and one whose reads fail
    under it (the replica was fit at the last check), are both answered from the primary, and the log says so."""
    operator = create_operator()
    login(operator)
    assert client.get("/backoffice/").status_code == 200 and replica().fit
    replica_app.config["REPLICA_CHECK_SECONDS"] = 3600
    drop_replica()
    assert client.get("/api/v1/catalog").status_code == 200 and replica().fit  # fit until the next check
    streaming_replica.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="metropoints.core.replica"):
            reply = client.get("/backoffice/?days=7", headers={"Accept-Language": "en"})  # fails under the view
            assert reply.status_code == 200 and 'data-kpi="riders">1<' in reply.get_data(as_text=True)
            assert not replica().fit and "unavailable" in caplog.text
            caplog.clear()
            replica_app.config["REPLICA_CHECK_SECONDS"] = 0
            drop_replica()
            assert client.get("/api/v1/catalog").status_code == 200  # down before reading
            assert "unavailable" in caplog.text and "reading from the primary" in caplog.text
    finally:
        streaming_replica.start()
