"""core.db.autocommit_row, the hot paths' statement straight to psycopg on a pooled connection: the connection goes
back to the pool as it came (idle, not in autocommit), and one that broke is dropped rather than handed out again;
a connection that sat idle in the pool is pinged as it goes out, and replaced if the server dropped it."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from metropoints.core import db as core_db
from metropoints.core.db import autocommit_row, db, hot_row, rollback_unit_of_work


def test_the_connection_goes_back_as_it_came(app):
    """After a statement (and after one that fails), the pooled connection is idle and out of autocommit, so the
    next unit of work on it opens its transaction as always."""
    db.engine.dispose()
    assert autocommit_row("SELECT 1 AS one", {}).one == 1
    with pytest.raises(psycopg.errors.DivisionByZero):
        autocommit_row("SELECT 1 / 0", {})
    with db.engine.connect() as connection:  # the pool's only connection: the one both statements went on
        driver = connection.connection.driver_connection
        assert driver.autocommit is False
        assert connection.exec_driver_sql("SELECT 2").scalar() == 2
        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


def test_a_broken_connection_is_dropped_from_the_pool(app, database_url):
    """A statement on a connection the server ended fails once; the connection is not handed out again, and the
    next statement gets a fresh one."""
    db.engine.dispose()
    with db.engine.connect() as connection:  # the pool's only connection
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        autocommit_row("SELECT 1 AS one", {})
    row = autocommit_row("SELECT pg_backend_pid() AS pid", {})
    assert row.pid != pid


def terminate(database_url: str, pid: int) -> None:
    """End the server side of a connection, as a restart or failover would."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_the_server_dropped_while_it_sat_in_the_pool_is_replaced(app, database_url, monkeypatch):
    """A pooled connection idle for PING_AFTER_IDLE_SECONDS is pinged as it is handed out: one the server ended
    meanwhile is replaced before the request uses it, for the hot paths' statements and the ORM session alike, and
    one that is alive goes out idle, as it came."""
    monkeypatch.setattr(core_db, "PING_AFTER_IDLE_SECONDS", 0.0)
    db.engine.dispose()
    first = autocommit_row("SELECT pg_backend_pid() AS pid", {}).pid
    terminate(database_url, first)
    second = autocommit_row("SELECT pg_backend_pid() AS pid", {}).pid
    assert second != first
    terminate(database_url, second)
    assert db.session.execute(text("SELECT pg_backend_pid()")).scalar() not in (first, second)
    db.session.rollback()
    with db.engine.connect() as connection:  # pinged and alive: handed out idle, out of autocommit
        driver = connection.connection.driver_connection
        assert driver.autocommit is False
        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_connection_back_in_the_pool_within_seconds_goes_out_unpinged(app, database_url, monkeypatch):
    """No ping on a connection used moments ago (the hot paths pay no round trip for it): one the server ended
    within those seconds fails its statement once, and the next statement gets a fresh connection."""
    monkeypatch.setattr(core_db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    db.engine.dispose()
    first = autocommit_row("SELECT pg_backend_pid() AS pid", {}).pid
    terminate(database_url, first)
    with pytest.raises(psycopg.OperationalError):
        autocommit_row("SELECT 1 AS one", {})
    assert autocommit_row("SELECT pg_backend_pid() AS pid", {}).pid != first


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
    idle = driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if idle:
        driver.autocommit = True  # outside a transaction: ask in autocommit, leaving none open behind the session
    try:
        return driver.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%hot_probe%%'"
                              ).fetchone()[0]
    finally:
        if idle:
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
