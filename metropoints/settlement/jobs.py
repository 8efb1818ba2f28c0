"""Settlement's jobs: the monthly run, invoicing a statement (retried with backoff), and the pending-invoice sweep.

Invoicing talks to the provider inside the job's unit of work; a provider error rolls it back, is recorded on the
statement in a unit of work of its own, and is raised again so rq retries it (on rq's schedule, see
operations.enqueue_invoicing). Without Redis the job runs inline and a failed attempt stays pending for the sweep
or `flask settlement invoice`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import get_current_job

from metropoints.core.db import commit_unit_of_work, rollback_unit_of_work
from metropoints.core.jobs import job
from metropoints.settlement import operations
from metropoints.settlement.provider import PaymentProvider, ProviderError

log = logging.getLogger(__name__)

# After this, a statement still pending is sent again (rq's backoff, SETTLEMENT_RETRY_BACKOFF, spans ~28 minutes).
SWEEP_AFTER_MINUTES = 30


def invoice_statement_job(statement_id: int) -> str:
    """Issue one statement's invoice; see operations.invoice_statement."""
    try:
        status = operations.invoice_statement(statement_id, PaymentProvider.from_config())
        commit_unit_of_work()
        return status
    except ProviderError as error:
        rollback_unit_of_work()
        log.warning("statement %s: invoicing failed (%s): %s", statement_id,
                    "will retry" if error.retryable else "gave up", error)
        operations.record_invoicing_error(statement_id, error)
        commit_unit_of_work()
        if error.retryable and get_current_job() is not None:
            raise
        return "invoice_failed" if not error.retryable else "pending"
    except Exception:
        rollback_unit_of_work()
        raise


@job
def run_period_job(period: str | None = None) -> list[int]:
    """The monthly run (by `rq cron` early on the 1st: the month just ended), or the given YYYY-MM."""
    target = operations.parse_period(period) if period else operations.previous_period()
    return operations.run_period(target).created


@job
def invoice_pending_job() -> int:
    """Send statements still pending after SWEEP_AFTER_MINUTES (rq's retries ran out, or jobs ran inline while
    the provider was down) to invoicing again."""
    ids = operations.statements_to_invoice(older_than=timedelta(minutes=SWEEP_AFTER_MINUTES))
    for statement_id in ids:
        operations.enqueue_invoicing(statement_id)
    return len(ids)
