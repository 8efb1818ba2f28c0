"""Redemption tests: buying coupons with points, cancelling them, using them at the counter, and their expiry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

PASSWORD = "password123"
# Line 1 stations (shared/data/shenyang_metro/stations.csv).
STATION_A, STATION_B = "0109", "0114"


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
