"""core.db.autocommit_row, the hot paths' statement straight to psycopg on connections kept in autocommit for it
(no more of them at once than the engine's pool holds): the pool's connections are never put in autocommit, one
that broke is replaced by the next statement, one that sat unused is pinged first and replaced if the server dropped
it, and the engine's disposal closes them. core.db.hot_row, the hot statements on the unit of work's connection, and
rollback_unit_of_work keeping what psycopg prepared."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import text

from metropoints.core import db as core_db
from metropoints.core.db import autocommit_row, db, hot_row, rollback_unit_of_work
from tests.conftest import make_app


def probe_pid() -> int:
    """The server process of the autocommit connection a statement went on."""
    return autocommit_row("SELECT pg_backend_pid() AS pid", {}).pid


def terminate(database_url: str, pid: int) -> None:
    """End the server side of a connection, as a restart or failover would."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def gone(database_url: str, pid: int) -> bool:
    """Whether the server process `pid` has ended (a closed connection's backend exits soon after: up to 5 s)."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        for _ in range(50):
            if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0:
                return True
            time.sleep(0.1)
    return False


def test_the_probe_keeps_its_connection_in_autocommit(app):
    """Statements (and one that fails) go one after another on one connection, in autocommit, each its own
    transaction; the pool's connections stay out of autocommit, and a unit of work opens its transaction on them as
    always."""
    first = probe_pid()
    with pytest.raises(psycopg.errors.DivisionByZero):
        autocommit_row("SELECT 1 / 0", {})
    assert probe_pid() == first
    row = autocommit_row("SELECT now() = statement_timestamp() AS alone, pg_current_xact_id_if_assigned() AS xid",
                         {})
    assert row.alone is True and row.xid is None  # no transaction was left open on it
    with db.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver.autocommit is False
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != first
        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


def test_a_connection_used_within_seconds_goes_on_unpinged(app, database_url, monkeypatch):
    """No ping on a connection used moments ago (the hot paths pay no round trip for it): one the server ended
    within those seconds fails its statement once, and the next statement gets a fresh connection."""
    monkeypatch.setattr(core_db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    first = probe_pid()
    terminate(database_url, first)
    with pytest.raises(psycopg.OperationalError):
        autocommit_row("SELECT 1 AS one", {})
    assert probe_pid() != first


def test_a_connection_the_server_dropped_while_it_sat_unused_is_replaced(app, database_url, monkeypatch):
    """A connection unused for PING_AFTER_IDLE_SECONDS is pinged before it is used: one the server ended meanwhile
    is replaced before the statement, for the hot paths' probe and the ORM session's pooled connections alike, and a
    pooled one that is alive goes out idle, as it came."""
    monkeypatch.setattr(core_db, "PING_AFTER_IDLE_SECONDS", 0.0)
    db.engine.dispose()
    first = probe_pid()
    terminate(database_url, first)
    second = probe_pid()
    assert second != first
    pooled = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
    db.session.rollback()
    terminate(database_url, pooled)
    assert db.session.execute(text("SELECT pg_backend_pid()")).scalar() not in (first, second, pooled)
    db.session.rollback()
    with db.engine.connect() as connection:  # pinged and alive: handed out idle, out of autocommit
        driver = connection.connection.driver_connection
        assert driver.autocommit is False
        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_the_engine_disposal_closes_them(app, database_url):
    """Disposing of the engine (as a forked worker or a test does) closes the autocommit connections not lent."""
    first = probe_pid()
    db.engine.dispose()
    assert gone(database_url, first)
    assert probe_pid() != first


def test_no_more_at_once_than_the_pool_holds(app):
    """Threads beyond the engine's pool size wait for a connection rather than open more."""
    db.engine.dispose()
    size = db.engine.pool.size()
    pids: list[int] = []

    def probe() -> None:
        with app.app_context():
            pids.append(autocommit_row("SELECT pg_backend_pid() AS pid, pg_sleep(0.05) AS slept", {}).pid)

    threads = [threading.Thread(target=probe) for _ in range(size * 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pids) == size * 3
    assert len(set(pids)) <= size


def test_each_engine_has_its_own(app, database_url):
    """The connections belong to the engine they came from: another app's engine gets its own."""
    first = probe_pid()
    other = make_app(database_url)
    with other.app_context():
        second = probe_pid()
        other_engine = db.engine
    assert second != first
    assert probe_pid() == first
    other_engine.dispose()
    assert gone(database_url, second)


def test_a_hot_statement_on_a_connection_the_server_ended_fails_once(app, database_url):
    """core.db.hot_row on a unit of work whose connection the server ended: the statement fails, the unit of work
    rolls back without a second error, and the next unit of work gets a fresh connection."""
    db.engine.dispose()
    pid = hot_row("SELECT pg_backend_pid()", {})[0]
    rollback_unit_of_work()
    terminate(database_url, pid)
    with pytest.raises(psycopg.OperationalError):
        hot_row("SELECT 1", {})
    rollback_unit_of_work()
    assert hot_row("SELECT pg_backend_pid()", {})[0] != pid
    rollback_unit_of_work()


def prepared_here(driver: psycopg.Connection) -> int:
    """How many statements the server holds prepared for this connection that ran `hot_probe` below."""
    query = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%hot_probe%%'"
    if driver.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return driver.execute(query).fetchone()[0]
    driver.autocommit = True  # outside a transaction: ask in autocommit, leaving none open behind the session
    try:
        return driver.execute(query).fetchone()[0]
    finally:
        driver.autocommit = False


@pytest.mark.parametrize("keep_prepared", [True, False])
def test_a_rollback_keeping_prepared_statements_keeps_them(app, keep_prepared):
    """The fast path's refusals end their transaction keeping what psycopg prepared on the connection (it prepares a
    statement at its fifth run); psycopg's own rollback deallocates everything. Either way the transaction is gone
    and the connection goes on."""
    db.engine.dispose()
    for n in range(6):
        assert hot_row("SELECT 41 + %(n)s::int AS hot_probe", {"n": n})[0] == 41 + n
    driver = db.session.connection().connection.driver_connection
    hot_row("SELECT set_config('metropoints.test_mark', 'set', true)", {})  # lasts as long as the transaction
    assert prepared_here(driver) == 1
    rollback_unit_of_work(keep_prepared=keep_prepared)
    assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert prepared_here(driver) == (1 if keep_prepared else 0)
    assert hot_row("SELECT current_setting('metropoints.test_mark', true)", {})[0] in ("", None)  # rolled back
    assert hot_row("SELECT 41 + %(n)s::int AS hot_probe", {"n": 1})[0] == 42
    assert db.session.connection().connection.driver_connection is driver
    rollback_unit_of_work(keep_prepared=keep_prepared)


def test_a_rollback_keeping_prepared_statements_after_the_server_ended_the_connection(app, database_url):
    """A refusal on a connection that broke: nothing is sent on it, the session rolls back as always, and the next
    unit of work gets a fresh connection."""
    db.engine.dispose()
    pid = hot_row("SELECT pg_backend_pid()", {})[0]
    terminate(database_url, pid)
    with pytest.raises(psycopg.OperationalError):
        hot_row("SELECT 1", {})
    rollback_unit_of_work(keep_prepared=True)
    assert hot_row("SELECT pg_backend_pid()", {})[0] != pid
    rollback_unit_of_work(keep_prepared=True)


def test_a_rollback_keeping_prepared_statements_after_a_commit_sends_nothing(app):
    """After its unit of work committed, a connection is the pool's again: a later rollback sends it nothing."""
    db.engine.dispose()
    hot_row("SELECT 1", {})
    core_db.commit_unit_of_work()
    rollback_unit_of_work(keep_prepared=True)  # no transaction of the session's: nothing to end
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1
