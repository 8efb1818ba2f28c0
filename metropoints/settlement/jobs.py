"""Settlement's scheduled jobs: the monthly run, the pending-invoice sweep and the daily overdue mail (`rq cron`, see
cron_config.py).

The job that invoices one statement, with retries, is `invoicing.invoice_statement_job`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from metropoints.core.jobs import enqueue, job
from metropoints.settlement import operations, periods
from metropoints.settlement.invoicing import enqueue_invoicing
from metropoints.settlement.queries import statements_to_invoice

log = logging.getLogger(__name__)

# After this, a statement still pending is sent again (rq's backoff, SETTLEMENT_RETRY_BACKOFF, spans ~28 minutes).
SWEEP_AFTER_MINUTES = 30


@job
def run_period_job(period: str | None = None) -> list[int]:
    """The monthly run (by `rq cron` early on the 1st: the month just ended), or the given YYYY-MM."""
    target = periods.parse_period(period) if period else periods.previous_period()
    return operations.run_period(target).created


@job
def invoice_pending_job() -> int:
    """Send statements still pending after SWEEP_AFTER_MINUTES (rq's retries ran out, or jobs ran inline while
    the provider was down) to invoicing again."""
    ids = statements_to_invoice(older_than=timedelta(minutes=SWEEP_AFTER_MINUTES))
    for statement_id in ids:
        enqueue_invoicing(statement_id)
    return len(ids)


@job
def mail_overdue_job() -> int:
    """Daily: mail the owners of statements newly past their due date, once each (operations.mail_overdue). A full
    batch queues the job again for the rest, each batch in a unit of work of its own."""
    mailed = operations.mail_overdue(limit=operations.OVERDUE_BATCH)
    if len(mailed) == operations.OVERDUE_BATCH:
        enqueue(mail_overdue_job, queue="scheduled")
    return len(mailed)
