"""Reads that may be seconds stale go to a streaming replica: the KPI and report pages, the catalogue, the kiosk feed,
the owner's activity. Everything else, writes and every read of what a user has just written (a balance after a
redemption, a campaign just saved, a cashier's validations), stays on the primary.

A view opts in with `@stale_ok` (or a block with `with read_replica():`); inside it the session sends its statements
to the replica (core.db.RoutingSession). Before that, the replica's state is checked, at most every
REPLICA_CHECK_SECONDS per process: unreachable, or more than REPLICA_MAX_LAG_SECONDS behind the primary, and the
reads go to the primary, which the log says (once per check). A replica that fails during a `stale_ok` view is
checked again at once, and the view runs again on the primary: those views only read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TypeVar

from flask import current_app
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from metropoints.core.config import normalise_database_url
from metropoints.core.db import db, reads_to

log = logging.getLogger(__name__)

EXTENSION_KEY = "metropoints_replica"
T = TypeVar("T")

# How far behind the primary the replica's data is, in seconds: 0 when it has replayed all it received while
# streaming (an idle primary sends nothing, and nothing is missing); otherwise the age of the last transaction it
# replayed. A server that is not in recovery is a primary: nothing behind.
LAG_SQL = text("""
SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
                 AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9) END
""")


class Replica:
    """A replica's engine and whether it is fit to read from, as last checked."""

    def __init__(self, engine: Engine, *, max_lag: float, check_every: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`max_lag` and `check_every` in seconds."""
        self.engine = engine
        self.max_lag = max_lag
        self.check_every = check_every
        self.clock = clock
        self.fit = False
        self._next_check = 0.0
        self._lock = threading.Lock()

    def usable(self) -> bool:
        """Whether reads may go to the replica now (checked again once the last check is older than check_every)."""
        if self.clock() < self._next_check:
            return self.fit
        with self._lock:
            if self.clock() >= self._next_check:
                self.check()
        return self.fit

    def check(self) -> bool:
        """Ask the replica how far behind it is, and log when it is unfit (each time) or fit again (once)."""
        problem = None
        try:
            with self.engine.connect() as connection:
                lag = float(connection.execute(LAG_SQL).scalar_one())
            if lag > self.max_lag:
                problem = f"lags {lag:.1f} s behind the primary (more than {self.max_lag:g} s)"
        except SQLAlchemyError as error:
            cause = error.orig if isinstance(error, DBAPIError) else error
            problem = f"unavailable ({type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]})"
        if problem:
            log.warning("read replica %s %s: reading from the primary", self.engine.url.render_as_string(), problem)
        elif not self.fit:
            log.info("read replica %s is fit: stale-ok reads go to it", self.engine.url.render_as_string())
        self.fit = problem is None
        self._next_check = self.clock() + self.check_every
        return self.fit


def replica() -> Replica | None:
    """The app's replica (made on first use from REPLICA_DATABASE_URL), or None when there is none."""
    config = current_app.config
    if not config.get("REPLICA_DATABASE_URL"):
        return None
    found = current_app.extensions.get(EXTENSION_KEY)
    if found is None:
        engine = create_engine(normalise_database_url(config["REPLICA_DATABASE_URL"]), pool_size=5,
                               connect_args={"connect_timeout": 2})
        found = current_app.extensions.setdefault(EXTENSION_KEY, Replica(
            engine, max_lag=float(config["REPLICA_MAX_LAG_SECONDS"]),
            check_every=float(config["REPLICA_CHECK_SECONDS"])))
    return found


def drop_replica() -> None:
    """Forget the app's replica and close its connections (the next use makes it anew from the settings). The
    session is rolled back first, so a replica connection it holds goes back to the pool before the pool closes."""
    found = current_app.extensions.pop(EXTENSION_KEY, None)
    if found is not None:
        db.session.rollback()
        found.engine.dispose()


@contextmanager
def read_replica() -> Iterator[bool]:
    """Inside the block the session reads from the replica when there is a fit one (yields whether it does)."""
    target = replica()
    if target is None or not target.usable():
        yield False
        return
    previous = reads_to.get()
    reads_to.set(target.engine)  # set back, not reset: a streamed CSV may end in another context than it began
    try:
        yield True
    finally:
        reads_to.set(previous)


def stale_ok(view: Callable[..., T]) -> Callable[..., T]:
    """Let a view that only reads, and may show data seconds old, read from the replica; when the replica fails
    during the view, the view runs again on the primary."""

    @wraps(view)
    def wrapper(*args, **kwargs) -> T:
        """The view on the replica, or on the primary."""
        with read_replica() as on_replica:
            if not on_replica:
                return view(*args, **kwargs)
            try:
                return view(*args, **kwargs)
            except DBAPIError:
                db.session.rollback()
                if replica().check():
                    raise  # the replica is fine: the error is the view's own
        return view(*args, **kwargs)

    return wrapper


def stale_ok_rows(rows: Iterable[T]) -> Iterator[T]:
    """Stream rows (a generator reading the database as it goes) from the replica when there is a fit one."""
    with read_replica():
        yield from rows
