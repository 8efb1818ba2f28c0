"""core.db.autocommit_row, the hot paths' statement straight to psycopg on a pooled connection: the connection goes
back to the pool as it came (idle, not in autocommit), and one that broke is dropped rather than handed out again."""

from __future__ import annotations

import psycopg
import pytest

from metropoints.core.db import autocommit_row, db


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
