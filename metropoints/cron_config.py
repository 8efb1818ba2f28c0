"""Schedules for `rq cron metropoints/cron_config.py` (times in UTC; the metro's day starts at 16:00 UTC)."""

import os

from rq import cron

from metropoints.accrual.jobs import create_partitions_job, expire_points_job, sweep_held_trips_job
from metropoints.campaigns.jobs import prune_images_job
from metropoints.redemption.jobs import expire_coupons_job
from metropoints.settlement.jobs import invoice_pending_job, mail_overdue_job, run_period_job

PREFIX = os.environ.get("FLASK_QUEUE_PREFIX", "metropoints")

# 00:10 on 1 January in Asia/Shanghai: expire what is left of the points earned two years ago.
cron.register(expire_points_job, queue_name=f"{PREFIX}-scheduled", cron="10 16 31 12 *", job_timeout=3600)
# Every 10 minutes: credit trips that arrived while their reference was being linked.
cron.register(sweep_held_trips_job, queue_name=f"{PREFIX}-scheduled", interval=600, job_timeout=600)
# Every 5 minutes: coupons past their validity become expired (riders already see them so; this settles the rows).
cron.register(expire_coupons_job, queue_name=f"{PREFIX}-scheduled", interval=300, job_timeout=300)
# 08:30 on the 1st in Asia/Shanghai: the statements of the month just ended, then their invoices.
cron.register(run_period_job, queue_name=f"{PREFIX}-scheduled", cron="30 0 1 * *", job_timeout=3600)
# Every 15 minutes: statements whose invoicing is still pending after rq's retries go to the provider again.
cron.register(invoice_pending_job, queue_name=f"{PREFIX}-scheduled", interval=900, job_timeout=900)
# 09:00 in Asia/Shanghai: mail the owners of statements that became overdue since (each statement once).
cron.register(mail_overdue_job, queue_name=f"{PREFIX}-scheduled", cron="0 1 * * *", job_timeout=900)
# 04:00 in Asia/Shanghai: uploaded campaign images that nothing names any more.
cron.register(prune_images_job, queue_name=f"{PREFIX}-scheduled", cron="0 20 * * *", job_timeout=600)
# 03:00 in Asia/Shanghai: the monthly partitions of trips and ledger entries for the coming months (made months
# ahead, so a few failed runs never leave the 1st of a month without its partition).
cron.register(create_partitions_job, queue_name=f"{PREFIX}-scheduled", cron="0 19 * * *", job_timeout=600)
