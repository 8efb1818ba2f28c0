"""Trip files and the expiry through real rq queues on Redis, run by a SimpleWorker in burst mode."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from metropoints.accrual.jobs import expire_points_job, process_trip_chunk, start_file_import, sweep_held_trips_job
from metropoints.accrual.ledger import ledger_sum, post_entry
from metropoints.accrual.models import BatchStatus, EntryKind, Trip, TripBatch, TripBatchChunk
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.jobs import enqueue, get_queue, redis_connection
from metropoints.core.models import Rider
from tests.helpers import noon_yesterday, trip, work_burst, write_trip_csv


def test_file_chunks_run_on_rq_workers(redis_app, create_rider, create_partner):
    """A file is split into chunks queued after the commit; a worker credits them; re-running a chunk is a no-op."""
    create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    base = noon_yesterday()
    rows = [trip(f"t{i}", ref="card-1" if i < 5 else "card-2", exited_at=base + timedelta(minutes=30 * i))
            for i in range(12)] + [{**trip("bad"), "entry_station": "0000"}]
    batch = start_file_import(partner=partner, filename="day.csv", rows=rows, chunk_rows=5)
    assert get_queue("ingest").count == 0  # nothing reaches the queue before the commit
    commit_unit_of_work()
    assert get_queue("ingest").count == 3
    work_burst("ingest")
    db.session.expire_all()
    batch = db.session.get(TripBatch, batch.id)
    assert batch.status == BatchStatus.done
    assert (batch.rows_done, batch.credited, batch.held, batch.rejected) == (13, 5, 7, 1)
    first_chunk = db.session.scalar(select(TripBatchChunk.id).order_by(TripBatchChunk.id))
    assert process_trip_chunk(first_chunk) is None  # the job again: already done, nothing changes
    assert db.session.scalar(select(func.count()).select_from(Trip)) == 12


def test_expiry_job_runs_on_a_worker(redis_app, create_rider):
    """The expiry job (what `rq cron` schedules) expires the year-end leftovers once, however often it runs."""
    rider = create_rider()
    post_entry(rider_id=rider.id, points=25, kind=EntryKind.adjustment, reason="old", earned_on=date(2024, 3, 1))
    commit_unit_of_work()
    for _ in range(2):
        enqueue(expire_points_job, 2025, queue="scheduled")
        commit_unit_of_work()
        work_burst("scheduled")
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 0 and ledger_sum(rider.id) == 0


def test_jobs_run_inline_without_redis(app, create_rider):
    """Without REDIS_URL the same job runs right after the commit, in its own unit of work."""
    rider = create_rider()
    post_entry(rider_id=rider.id, points=7, kind=EntryKind.adjustment, reason="old", earned_on=date(2024, 3, 1))
    enqueue(expire_points_job, 2025, queue="scheduled")
    commit_unit_of_work()
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 0


def test_cli_import_with_workers_shows_progress(redis_app, runner, create_partner, create_rider, tmp_path):
    """`flask trips import --no-wait` queues the chunks; a worker credits them; the batch reports the counts."""
    create_rider(links=[("afc", "card-1")])
    create_partner(name="fare-system")
    path = tmp_path / "trips.csv"
    base = noon_yesterday()
    write_trip_csv(path, (trip(f"f{i}", exited_at=base + timedelta(minutes=40 * i)) for i in range(6)))
    result = runner.invoke(args=["trips", "import", str(path), "--partner", "fare-system", "--chunk-rows", "100",
                                 "--no-wait"])
    assert result.exit_code == 0, result.output
    assert "queued for the rq workers" in result.output
    work_burst("ingest")
    db.session.expire_all()
    batch = db.session.scalar(select(TripBatch))
    assert (batch.status, batch.credited) == (BatchStatus.done, 6)


def test_flask_worker_process_credits_a_file(redis_app, create_rider, create_partner, database_url):
    """`flask worker --burst` in its own process (forking a work horse per job) credits a queued file."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    base = noon_yesterday()
    start_file_import(partner=partner, filename="w.csv", chunk_rows=2,
                      rows=[trip(f"w{i}", exited_at=base + timedelta(minutes=40 * i)) for i in range(4)])
    commit_unit_of_work()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_app.config["REDIS_URL"],
           "FLASK_QUEUE_PREFIX": redis_app.config["QUEUE_PREFIX"], "SECRET_KEY": "test-secret",
           "FLASK_REVIEW_FARMED_TRIPS": "false"}  # as the tests' app: four rides back and forth are not reviewed
    flask = Path(sys.executable).with_name("flask")
    done = subprocess.run([str(flask), "--app", "wsgi", "worker", "--burst", "ingest"], env=env, cwd=Path(__file__)
                          .parents[2], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    db.session.expire_all()
    batch = db.session.scalar(select(TripBatch))
    assert (batch.status, batch.credited) == (BatchStatus.done, 4)


def test_rq_cron_config_schedules_the_expiry(redis_app):
    """The file given to `rq cron` registers the expiry job on the scheduled queue, at 00:10 Shanghai on 1 Jan."""
    from pathlib import Path

    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=redis_connection())
    scheduler.load_config_from_file(str(Path(__file__).parents[2] / "metropoints" / "cron_config.py"))
    jobs = {job.func: job for job in scheduler.get_jobs()}
    expiry, sweep = jobs[expire_points_job], jobs[sweep_held_trips_job]
    assert expiry.cron == "10 16 31 12 *" and sweep.interval == 600
    assert expiry.queue_name.endswith("-scheduled") and sweep.queue_name.endswith("-scheduled")


def test_cli_import_waits_for_the_workers_and_shows_progress(redis_app, runner, create_partner, create_rider,
                                                              tmp_path):
    """Without --no-wait, `flask trips import` prints the batch's progress while rq workers credit its chunks."""
    import threading

    create_rider(links=[("afc", "card-1")])
    create_partner(name="fare-system")
    path = tmp_path / "trips.csv"
    base = noon_yesterday()
    write_trip_csv(path, (trip(f"g{i}", ref="card-1" if i < 5 else f"card-{i}",
                               exited_at=base + timedelta(minutes=i)) for i in range(300)))

    outcome: list = []

    def import_file() -> None:
        """The operator's command, in its own thread (and app context), waiting for the workers."""
        outcome.append(runner.invoke(args=["trips", "import", str(path), "--partner", "fare-system",
                                           "--chunk-rows", "100"]))

    thread = threading.Thread(target=import_file)
    thread.start()
    for _ in range(200):  # the worker, here in the main thread as rq wants, once the chunks are queued
        if get_queue("ingest").count == 3:
            break
        threading.Event().wait(0.05)
    work_burst("ingest")
    thread.join(timeout=60)
    (result,) = outcome
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert any(line.startswith("300/300 rows: credited 5") for line in lines)
    assert lines[-1].endswith("done: credited 5, capped 0, duplicates 0, held 295, rejected 0")
