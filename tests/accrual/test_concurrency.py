"""Concurrent deliveries: the database, not Python, keeps a trip credited once and the cap whole."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from metropoints.accrual.models import LedgerEntry, Partner, Trip
from metropoints.accrual.operations import receive_trips
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider
from tests.helpers import noon_yesterday, run_at_once, trip


def post_batches_at_once(app, partner_id: int, batches: list[list[dict]]) -> list:
    """Post each batch from its own thread, app context and database connection, released together."""

    def delivery(rows: list[dict]):
        def call():
            result = receive_trips(partner=db.session.get(Partner, partner_id), payload={"trips": rows})
            commit_unit_of_work()
            return result

        return call

    return run_at_once(app, [delivery(rows) for rows in batches])


def test_same_batch_posted_twice_at_once_is_credited_once(app, create_rider, create_partner):
    """Two deliveries of the same batch at the same moment: one credits, the other finds duplicates."""
    riders = [create_rider(links=[("afc", f"card-{i}")]) for i in range(20)]
    partner, _ = create_partner()
    base = noon_yesterday()
    rows = [trip(f"t{i}", ref=f"card-{i % 25}", exited_at=base + timedelta(minutes=i)) for i in range(200)]
    first, second = post_batches_at_once(app, partner.id, [rows, rows])
    assert not isinstance(first, Exception) and not isinstance(second, Exception), (first, second)
    assert first.duplicates + second.duplicates == 200
    assert first.credited + first.capped + second.credited + second.capped == 160  # 20 linked refs x 8 trips
    assert first.held + second.held == 40
    assert db.session.scalar(select(func.count()).select_from(Trip)) == 200
    db.session.expire_all()
    for rider in riders:
        stored = db.session.get(Rider, rider.id).points_balance
        assert stored == 48  # 8 trips x 6 points, under the cap
        assert db.session.scalar(select(func.sum(LedgerEntry.points)).where(LedgerEntry.rider_id == rider.id)) == 48


def test_two_batches_for_one_rider_at_once_respect_the_cap(app, create_rider, create_partner):
    """Two different batches for one rider and day at once never credit more than the daily cap together."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    base = noon_yesterday()
    batch_a = [trip(f"a{i}", exited_at=base + timedelta(minutes=30 * i)) for i in range(8)]
    batch_b = [trip(f"b{i}", exited_at=base + timedelta(minutes=30 * i + 15)) for i in range(8)]
    results = post_batches_at_once(app, partner.id, [batch_a, batch_b])
    assert not any(isinstance(r, Exception) for r in results), results
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 60
    assert db.session.scalar(select(func.sum(Trip.points))) == 60
    assert db.session.scalar(select(func.sum(LedgerEntry.points))) == 60


def post_from_process(database_url: str, partner_id: int, rows: list[dict], start, results) -> None:
    """In a process of its own: build the app on the test database, wait for the start signal, post the batch."""
    from tests.conftest import make_app

    app = make_app(database_url)
    with app.app_context():
        partner = db.session.get(Partner, partner_id)
        start.wait(timeout=30)
        try:
            result = receive_trips(partner=partner, payload={"trips": rows})
            commit_unit_of_work()
            results.put((result.credited + result.capped, result.held, result.duplicates))
        except Exception as error:
            results.put(repr(error))
        finally:
            db.session.remove()
            db.engine.dispose()


def test_two_processes_posting_the_same_batch_credit_it_once(app, database_url, create_rider, create_partner):
    """Two OS processes deliver the same batch at the same moment: every trip is stored and credited once."""
    import multiprocessing

    riders = [create_rider(links=[("afc", f"card-{i}")]) for i in range(10)]
    partner, _ = create_partner()
    base = noon_yesterday()
    rows = [trip(f"p{i}", ref=f"card-{i % 12}", exited_at=base + timedelta(minutes=i)) for i in range(120)]
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=post_from_process, args=(database_url, partner.id, rows, start, results))
                 for _ in range(2)]
    for process in processes:
        process.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    assert sorted(outcomes) == [(0, 0, 120), (100, 20, 0)]
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Trip)) == 120
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 100
    assert {db.session.get(Rider, r.id).points_balance for r in riders} == {60}
