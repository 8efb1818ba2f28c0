"""Database: the SQLAlchemy handle, column types shared by every package, and the unit of work."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from psycopg.rows import RowFactory, namedtuple_row, tuple_row
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same on every database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# The replica engine that reads go to inside core.replica.read_replica(); None everywhere else.
reads_to: ContextVar[Engine | None] = ContextVar("reads_to", default=None)


class RoutingSession(FlaskSession):
    """Flask-SQLAlchemy's session, sending statements to the replica while `reads_to` names one and the session has
    nothing of its own to write; the primary otherwise. A write sent to the replica fails there (a standby is
    read-only), so a misplaced `stale_ok` shows at once."""

    def get_bind(self, mapper: Any = None, clause: Any = None, bind: Engine | Connection | None = None,
                 **kwargs: Any) -> Engine | Connection:
        """The replica inside read_replica() when nothing is pending; else Flask-SQLAlchemy's choice (the primary)."""
        replica = reads_to.get()
        if replica is not None and bind is None and not (self.new or self.dirty or self.deleted):
            return replica
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


db = SQLAlchemy(model_class=Base, session_options={"class_": RoutingSession})

# Row ids are INTEGER primary keys: a larger id cannot exist, and must never reach the database (where it is an error).
MAX_ID = 2**31 - 1
migrate = Migrate()


class UTCDateTime(TypeDecorator):
    """An aware UTC timestamp on every database; SQLite keeps naive text, so the zone is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        """Store UTC; naive datetimes are refused because their zone is a guess."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """Make SQLite enforce foreign keys and let readers work beside one writer."""
    module = type(dbapi_connection).__module__
    if module.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


# A pooled PostgreSQL connection that sat unused in the pool for this long is pinged before it is handed out (one
# round trip); one the server dropped meanwhile (a restart, a failover) is replaced then, before a request uses it.
# A connection back in the pool more recently goes out unpinged: SQLAlchemy's pool_pre_ping would ping every
# checkout, one round trip more for each hot-path request (0.1 ms of CPU per flash-sale attempt, about a tenth of
# the attempts/s, measured with bench/flash_sale.py, alternated). A connection the server dropped within these
# seconds fails its request once, and the pool is renewed after it (SQLAlchemy's disconnect handling).
PING_AFTER_IDLE_SECONDS = 5.0
_IDLE_SINCE = "idle_since"


@event.listens_for(Pool, "checkin")
def _note_idle_since(dbapi_connection, connection_record) -> None:
    """Remember when the connection went back to the pool."""
    connection_record.info[_IDLE_SINCE] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_after_idle(dbapi_connection, connection_record, connection_proxy) -> None:
    """Ping a PostgreSQL connection that was idle in the pool for PING_AFTER_IDLE_SECONDS or more, in autocommit (it
    goes out idle, as it came); a dead one is replaced by the pool (DisconnectionError makes it try a new one)."""
    since = connection_record.info.get(_IDLE_SINCE)
    if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
        return
    if not isinstance(dbapi_connection, psycopg.Connection):
        return
    try:
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute("SELECT 1")
        finally:
            if not dbapi_connection.closed:
                dbapi_connection.autocommit = False
    except psycopg.Error as error:
        raise DisconnectionError(f"a pooled connection was found dead: {error}") from error


def is_postgres() -> bool:
    """True when the bound database is PostgreSQL (set-wise paths use COPY and row locks there)."""
    return db.session.get_bind().dialect.name == "postgresql"


_NAMED_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


def driver_sql(statement: str) -> str:
    """A statement written with `:name` parameters in the form psycopg takes them (`%(name)s`), for `hot_row`."""
    return _NAMED_PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))


# session.info: (the session transaction, its psycopg connection) once a hot statement ran on it.
_HOT_CONNECTION = "hot_connection"
_IN_TRANSACTION = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)


def hot_row(statement: str, params: dict[str, Any], row_factory: RowFactory = tuple_row) -> Any:
    """The first row (a tuple, or what `row_factory` makes) of a statement in driver form (`driver_sql`) on
    PostgreSQL, sent to psycopg's cursor on the unit of work's connection, inside its transaction: no compilation,
    no result wrapping, no ORM. The hot paths' statements take this way; their times come back as psycopg makes them
    (aware, in the connection's zone). SQLAlchemy's execution around them (exec_driver_sql) cost about 0.1 ms of a
    sale's 1.5 ms of app CPU (bench/flash_sale.py, every attempt a sale, alternated). Errors are psycopg's own; the
    unit of work rolls back as always, and a connection that broke is invalidated first (as SQLAlchemy would), so
    that rollback does not fail on it and the pool makes a new one."""
    session = db.session()
    connection = session.connection()
    driver = connection.connection.driver_connection
    session.info[_HOT_CONNECTION] = (session.get_transaction(), driver)  # for rollback_unit_of_work(keep_prepared)
    try:
        with driver.cursor(row_factory=row_factory) as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone()
    except psycopg.OperationalError:
        if driver.broken or driver.closed:
            connection.invalidate()
        raise


def autocommit_row(statement: str, params: dict[str, Any]) -> Any:
    """The first row (a named tuple) of a statement in driver form, sent on a pooled connection of its own in
    autocommit (PostgreSQL): no BEGIN and no ROLLBACK round trip around it, and any write it makes is committed at
    once, whatever the unit of work does later. Only for a statement that stands alone (a hot path's token probe,
    before its unit of work has a transaction).

    It goes to psycopg's cursor directly, on the pool's connection: SQLAlchemy's Connection around it (made, set to
    autocommit and reset for each probe, its result wrapped) was about a sixth of a flash-sale attempt's samples in
    the workers, beside a statement that needs none of it. The connection is idle when the pool hands it out and
    idle again after the statement (autocommit opens no transaction), so it goes back as it came; one that broke
    is dropped from the pool."""
    connection = db.engine.raw_connection()
    try:
        driver = connection.driver_connection
        driver.autocommit = True
        try:
            with driver.cursor(row_factory=namedtuple_row) as cursor:
                cursor.execute(statement, params)
                return cursor.fetchone()
        finally:
            if not driver.closed:
                driver.autocommit = False
    except psycopg.OperationalError:
        connection.invalidate()
        raise
    finally:
        connection.close()  # back to the pool


def primary_is_postgres() -> bool:
    """True when the app's primary database is PostgreSQL; unlike is_postgres it opens no session (a hot path that
    may answer without the database asks this first)."""
    return db.engine.dialect.name == "postgresql"


# Called after each commit / rollback of a unit of work. core.jobs adds its hand-over of queued jobs here, so the
# database layer knows nothing of queues (and the two modules import in one direction only).
_after_commit: list[Callable[[], None]] = []
_after_rollback: list[Callable[[], None]] = []


def on_unit_of_work_end(*, commit: Callable[[], None], rollback: Callable[[], None]) -> None:
    """Run `commit` after every committed unit of work and `rollback` after every rolled-back one (once each)."""
    if commit not in _after_commit:
        _after_commit.append(commit)
    if rollback not in _after_rollback:
        _after_rollback.append(rollback)


def commit_unit_of_work() -> None:
    """Commit the session, then run what waits for the commit (jobs queued during the unit of work are handed over).
    A unit of work that never opened a session (a sold-out reply from its mark, say) has nothing to commit and
    nothing waiting, so none is made for it."""
    if not db.session.registry.has():
        return
    db.session.info.pop(_HOT_CONNECTION, None)
    db.session.commit()
    for hook in _after_commit:
        hook()


def rollback_unit_of_work(*, keep_prepared: bool = False) -> None:
    """Roll back the session and forget what waited for its commit (the jobs it had queued); nothing to do for a
    unit of work that never opened a session.

    `keep_prepared`, for a unit of work that changed no schema (the fast path's refusals: core.fastpath): the
    transaction of its hot statements (hot_row) ends with a ROLLBACK sent to libpq as it is, so the statements
    psycopg prepared on that connection stay prepared. psycopg's own rollback() forgets them all (DEALLOCATE ALL: it
    cannot know whether the transaction dropped what they name), and the connection's next statements are then
    parsed and planned afresh until each has run five times again; with one counter validation in ten refused (a
    coupon scanned twice), that doubled PostgreSQL's CPU per validation (bench/counter.py --refused 0.1). The
    session's rollback after it finds the connection idle and sends nothing more."""
    if not db.session.registry.has():
        return
    session = db.session()
    held = session.info.pop(_HOT_CONNECTION, None)
    if keep_prepared and held is not None:
        transaction, driver = held
        # Only the connection of this very transaction: after a commit the pool may have lent it to another thread.
        if (transaction is session.get_transaction() and transaction.is_active and not driver.closed
                and driver.pgconn.transaction_status in _IN_TRANSACTION):
            driver.pgconn.exec_(b"ROLLBACK")  # failed (a broken connection): the session's rollback deals with it
    session.rollback()
    for hook in _after_rollback:
        hook()


def sql_param(value):
    """A date or timestamp as raw SQL on this database stores it: SQLite keeps naive UTC text, as the ORM writes it."""
    if is_postgres():
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value
