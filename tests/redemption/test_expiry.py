"""Coupons past their validity expire by a scheduled job (and `flask coupons expire`); no points come back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider
from metropoints.core.timeutil import utcnow
from metropoints.redemption.models import Coupon, CouponStatus
from metropoints.redemption.operations import effective_status, expire_coupons, redeem
from tests.helpers import work_burst


@pytest.fixture
def coupons(app, create_shop, create_campaign, create_riders):
    """Three coupons of one rider: one past its validity, one still valid, one used after its validity was
    set to the past (used coupons never expire). Returns (rider, [past, valid, used])."""
    from metropoints.redemption.operations import validate

    shop = create_shop()
    campaign = create_campaign(shop, per_rider_limit=5, point_price=100)
    rider = create_riders(points=1000)[0]
    bought = [redeem(rider_id=rider.id, campaign_id=campaign.id) for _ in range(3)]
    validate(cashier=shop.cashier, code=bought[2].code)
    commit_unit_of_work()
    for index in (0, 2):
        db.session.get(Coupon, bought[index].coupon_id).expires_at = utcnow() - timedelta(minutes=1)
    commit_unit_of_work()
    return rider, [b.coupon_id for b in bought]


def statuses(ids: list[int]) -> list[CouponStatus]:
    """The stored status of each coupon."""
    db.session.expire_all()
    return [db.session.get(Coupon, i).status for i in ids]


def test_expire_marks_only_issued_coupons_past_their_validity(coupons, books):
    """One set-wise UPDATE: issued and past -> expired (with expired_at); running it again changes nothing; no
    refund."""
    rider, ids = coupons
    past = db.session.get(Coupon, ids[0])
    assert past.status == CouponStatus.issued and effective_status(past) == CouponStatus.expired
    assert expire_coupons() == 1
    commit_unit_of_work()
    assert statuses(ids) == [CouponStatus.expired, CouponStatus.issued, CouponStatus.used]
    assert db.session.get(Coupon, ids[0]).expired_at is not None
    assert expire_coupons() == 0
    assert db.session.get(Rider, rider.id).points_balance == 700
    books()


def test_expiry_job_runs_inline_and_on_a_worker(redis_app, coupons):
    """The job (what `rq cron` schedules) expires the coupons on an rq worker; a second run is a no-op."""

    from metropoints.core.jobs import enqueue
    from metropoints.redemption.jobs import expire_coupons_job

    _, ids = coupons
    for _ in range(2):
        enqueue(expire_coupons_job, queue="scheduled")
        commit_unit_of_work()
        work_burst("scheduled")
    assert statuses(ids) == [CouponStatus.expired, CouponStatus.issued, CouponStatus.used]


def test_expiry_job_inline(coupons):
    """Called directly (no Redis), the job is its own unit of work and returns the count."""
    from metropoints.redemption.jobs import expire_coupons_job

    _, ids = coupons
    assert expire_coupons_job() == 1
    assert statuses(ids)[0] == CouponStatus.expired


def test_flask_coupons_expire(runner, coupons):
    """`flask coupons expire` does the same and prints the count on its last line; `flask campaigns live` still
    works."""
    _, ids = coupons
    result = runner.invoke(args=["coupons", "expire"])
    assert result.exit_code == 0 and result.output.strip().splitlines()[-1] == "1 coupons expired"
    assert statuses(ids)[0] == CouponStatus.expired
    assert runner.invoke(args=["coupons", "expire"]).output.strip() == "0 coupons expired"
    live = runner.invoke(args=["campaigns", "live"])
    assert live.exit_code == 0 and live.output.strip().splitlines()[-1] == "1 live campaigns"


def test_rq_cron_config_schedules_the_coupon_expiry(redis_app):
    """The file given to `rq cron` runs the coupon expiry every 5 minutes on the scheduled queue."""
    from rq.cron import CronScheduler

    from metropoints.core.jobs import redis_connection
    from metropoints.redemption.jobs import expire_coupons_job

    scheduler = CronScheduler(connection=redis_connection())
    scheduler.load_config_from_file(str(Path(__file__).parents[2] / "metropoints" / "cron_config.py"))
    jobs = {job.func: job for job in scheduler.get_jobs()}
    assert jobs[expire_coupons_job].interval == 300
    assert jobs[expire_coupons_job].queue_name.endswith("-scheduled")
    assert len(jobs) == 8  # with accrual's three, settlement's, the image prune and the overdue mail
