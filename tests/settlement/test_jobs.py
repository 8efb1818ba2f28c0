"""Settlement's schedules: the monthly run early on the 1st and the pending-invoice sweep, on real rq queues."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rq.cron import CronScheduler
from sqlalchemy import select

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.jobs import enqueue, redis_connection
from metropoints.settlement.jobs import invoice_pending_job, run_period_job
from metropoints.settlement.models import Statement, StatementStatus
from tests.helpers import work_burst


def test_cron_runs_the_month_on_the_first_and_sweeps_every_15_minutes(redis_app):
    scheduler = CronScheduler(connection=redis_connection())
    scheduler.load_config_from_file(str(Path(__file__).parents[2] / "metropoints" / "cron_config.py"))
    jobs = {job.func: job for job in scheduler.get_jobs()}
    assert jobs[run_period_job].cron == "30 0 1 * *"  # 08:30 Asia/Shanghai on the 1st
    assert jobs[invoice_pending_job].interval == 900
    assert all(jobs[f].queue_name.endswith("-scheduled") for f in (run_period_job, invoice_pending_job))


def test_the_run_and_the_sweep_as_queued_jobs(redis_app, create_shop, month_of_coupons):
    """The monthly job makes October's statements (the provider is unreachable here, so they stay pending after
    rq's retries); the sweep sends statements pending for over 30 minutes to invoicing again."""
    redis_app.config["SETTLEMENT_RETRY_BACKOFF"] = (0,)
    shop = create_shop()
    month_of_coupons(shop, 2)
    enqueue(run_period_job, "2026-10", queue="scheduled")
    commit_unit_of_work()
    work_burst("scheduled", "default")
    statement = db.session.scalar(select(Statement))
    assert (statement.status, statement.coupon_count, statement.invoice_attempts) == (StatementStatus.pending, 2, 2)
    enqueue(invoice_pending_job, queue="scheduled")
    commit_unit_of_work()
    work_burst("scheduled", "default")
    db.session.expire_all()
    assert db.session.get(Statement, statement.id).invoice_attempts == 2  # not yet 30 minutes old
    statement.created_at -= timedelta(minutes=31)
    commit_unit_of_work()
    enqueue(invoice_pending_job, queue="scheduled")
    commit_unit_of_work()
    work_burst("scheduled", "default")
    db.session.expire_all()
    assert db.session.get(Statement, statement.id).invoice_attempts == 4
