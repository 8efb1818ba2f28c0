"""Builders shared by tests: valid trips on the real network, and a way to post them."""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from metropoints.core.timeutil import utcnow

# Line 1, 0109 -> 0114: 954 + 1135 + 1395 + 1042 + 1539 = 6065 m (hand-summed from stations.csv).
ENTRY, EXIT, METRES = "0109", "0114", 6065


def post(partner, rows, now: datetime | None = None):
    """Send rows through the feed operation (as of `now`, when given) and commit, as one API call does."""
    from metropoints.accrual.operations import receive_trips
    from metropoints.core.db import commit_unit_of_work

    result = receive_trips(partner=partner, payload={"trips": rows}, now=now)
    commit_unit_of_work()
    return result


def balance(rider_id: int) -> int:
    """The rider's stored balance, fresh from the database."""
    from metropoints.core.db import db
    from metropoints.core.models import Rider

    db.session.expire_all()
    return db.session.get(Rider, rider_id).points_balance


def trip(trip_id: str, *, ref: str = "card-1", source: str = "afc", entry: str = ENTRY, exit: str = EXIT,
         exited_at: datetime | None = None, minutes: int = 20, **overrides) -> dict:
    """A valid trip row (by default 6.065 km on line 1, ending an hour ago), with any field overridden."""
    end = exited_at or utcnow() - timedelta(hours=1)
    row = {"trip_id": trip_id, "source": source, "rider_ref": ref, "entry_station": entry, "exit_station": exit,
           "entered_at": (end - timedelta(minutes=minutes)).isoformat(), "exited_at": end.isoformat()}
    row.update(overrides)
    return row


def noon_yesterday() -> datetime:
    """12:00 yesterday in Asia/Shanghai (as UTC): trips within a few hours of it share one service day."""
    from metropoints.core.timeutil import SERVICE_OFFSET

    local = utcnow().astimezone(SERVICE_OFFSET) - timedelta(days=1)
    return local.replace(hour=12, minute=0, second=0, microsecond=0)


TRIP_FIELDS_ORDER = ["trip_id", "source", "rider_ref", "entry_station", "exit_station", "entered_at", "exited_at"]


def run_at_once(app, calls: list[Callable[[], Any]], timeout: float = 60) -> list:
    """Run each call in its own thread, app context and database connection, released together by a barrier;
    each call's result, or the exception it raised, in order. A call commits its own unit of work."""
    from metropoints.core.db import db, rollback_unit_of_work

    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(index: int, call: Callable[[], Any]) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results[index] = call()
            except Exception as error:  # the caller's assertions show it
                rollback_unit_of_work()
                results[index] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    return results


def write_trip_csv(path: Path, rows: Iterable[dict]) -> Path:
    """A trip file with the feed's columns as its header, as partners send it."""
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=TRIP_FIELDS_ORDER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def work_burst(*queue_names: str) -> None:
    """Run every job queued on these queues (rq retries included), in this process, then stop."""
    from rq import SimpleWorker

    from metropoints.core.jobs import get_queue, redis_connection

    SimpleWorker([get_queue(name) for name in queue_names], connection=redis_connection()).work(burst=True)
