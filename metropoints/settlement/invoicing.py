"""Invoicing a statement at the payment provider, and the job that does it with retries.

The job lives beside the steps it runs (not in jobs.py) because the monthly run in operations.py queues it:
operations -> invoicing -> provider, and jobs.py (the schedules) -> operations, so no two modules import each other.
Invoicing talks to the provider inside the job's unit of work; a provider error rolls it back, is recorded on the
statement in a unit of work of its own, and is raised again so rq retries it (on SETTLEMENT_RETRY_BACKOFF). Without
Redis the job runs inline and a failed attempt stays pending for the sweep or `flask settlement invoice`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from rq import get_current_job
from sqlalchemy import func, literal, select

from metropoints.core.db import commit_unit_of_work, db, is_postgres, rollback_unit_of_work
from metropoints.core.jobs import enqueue
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Merchant
from metropoints.settlement.mail import mail_statement
from metropoints.settlement.models import BillingAccount, Statement, StatementStatus
from metropoints.settlement.periods import period_label
from metropoints.settlement.provider import PaymentProvider, ProviderError
from metropoints.settlement.queries import sums_by_campaign

log = logging.getLogger(__name__)

# One invoice item per campaign up to this many campaigns; beyond, one item for all coupons (providers cap the
# items an invoice takes: localstripe sweeps 99 pending items, Stripe 250).
MAX_CAMPAIGN_ITEMS = 50
# PostgreSQL advisory lock class for invoicing: one merchant's statements are invoiced one at a time, because an
# invoice takes all of its customer's pending invoice items.
INVOICING_LOCK_CLASS = 5_301


@dataclass(frozen=True)
class InvoiceItem:
    """One invoice item a statement needs; `key` names it in the item's metadata."""

    key: str
    amount: int
    description: str


def invoice_items(statement: Statement) -> list[InvoiceItem]:
    """The invoice's items: the coupon fees per campaign (or in one item for many campaigns) and the monthly fee."""
    per_campaign = sums_by_campaign(statement.id)
    label = period_label(statement.period)
    items: list[InvoiceItem] = []
    if len(per_campaign) <= MAX_CAMPAIGN_ITEMS:
        items = [InvoiceItem(f"campaign-{row.campaign_id}", row.fees_fen,
                             f"{label} {row.title}: {row.coupons} used coupons x {statement.fee_per_coupon_fen} fen")
                 for row in per_campaign if row.fees_fen]
    elif statement.coupon_fees_fen:
        items = [InvoiceItem("coupons", statement.coupon_fees_fen,
                             f"{label}: {statement.coupon_count} used coupons x {statement.fee_per_coupon_fen} fen")]
    if statement.monthly_fee_fen:
        items.append(InvoiceItem("monthly-fee", statement.monthly_fee_fen, f"{label}: monthly listing fee"))
    return items


def _lock_merchant_invoicing(merchant_id: int) -> None:
    """Hold, until this unit of work ends, the merchant's invoicing lock (PostgreSQL; SQLite runs one writer)."""
    if is_postgres():
        db.session.execute(select(func.pg_advisory_xact_lock(literal(INVOICING_LOCK_CLASS), literal(merchant_id))))


def _customer_for(merchant: Merchant, provider: PaymentProvider) -> str:
    """The merchant's customer at the provider: recorded, found by its metadata, or created."""
    account = db.session.get(BillingAccount, merchant.id)
    if account is not None:
        return account.provider_customer_id
    found = [c for c in provider.list_all("/v1/customers", {})
             if c.get("metadata", {}).get("merchant_id") == str(merchant.id)]
    customer = found[0] if found else provider.create_customer(
        name=merchant.name, metadata={"merchant_id": str(merchant.id), "licence_no": merchant.licence_no},
        key=f"merchant-{merchant.id}-customer")
    db.session.add(BillingAccount(merchant_id=merchant.id, provider_customer_id=customer["id"]))
    db.session.flush()
    return customer["id"]


def _ours(obj: dict[str, Any], statement: Statement) -> bool:
    return obj.get("metadata", {}).get("statement_id") == str(statement.id)


def invoice_statement(statement_id: int, provider: PaymentProvider, *, now: datetime | None = None) -> str:
    """Issue the statement's invoice: customer, invoice items, invoice, finalize; returns the statement's status.

    Every step first looks for what an earlier, interrupted attempt made (by the statement id in the metadata) and
    every create carries an idempotency key, so retries after any failure end with exactly one invoice. The
    merchant's invoicing lock keeps two attempts, and two statements of one merchant, from interleaving. A
    ProviderError leaves the unit of work to be rolled back by the caller: nothing is recorded half-done (nor mailed).
    An issued statement is mailed to the merchant's owner with its amount, due date and payment link."""
    statement = db.session.get(Statement, statement_id)
    if statement is None or statement.status != StatementStatus.pending:
        return statement.status.value if statement else "missing"
    _lock_merchant_invoicing(statement.merchant_id)
    db.session.refresh(statement)
    if statement.status != StatementStatus.pending:
        return statement.status.value  # another attempt finished while this one waited for the lock
    statement.invoice_attempts += 1
    merchant = db.session.get(Merchant, statement.merchant_id)
    customer = _customer_for(merchant, provider)
    invoice = next((i for i in provider.invoices_of(customer) if _ours(i, statement)), None)
    if invoice is None:
        made = {item.get("metadata", {}).get("line") for item in provider.pending_invoice_items(customer)
                if _ours(item, statement)}
        for item in invoice_items(statement):
            if item.key not in made:
                provider.create_invoice_item(customer=customer, amount=item.amount, currency=statement.currency,
                                             description=item.description,
                                             metadata={"statement_id": str(statement.id), "line": item.key},
                                             key=f"statement-{statement.id}-item-{item.key}")
        invoice = provider.create_invoice(
            customer=customer, description=f"{merchant.name} {period_label(statement.period)}",
            metadata={"statement_id": str(statement.id), "period": period_label(statement.period)},
            key=f"statement-{statement.id}-invoice")
    if invoice.get("total") != statement.total_fen or invoice.get("currency") != statement.currency:
        # Something else was on the invoice (or something missing): never ask a merchant to pay a wrong amount.
        raise ProviderError(f"invoice {invoice.get('id')} totals {invoice.get('total')} {invoice.get('currency')}, "
                            f"the statement {statement.total_fen} {statement.currency}", retryable=False)
    statement.provider_invoice_id = invoice["id"]
    if invoice.get("status") == "draft":
        invoice = provider.finalize_invoice(invoice["id"], key=f"statement-{statement.id}-finalize")
    now = now or utcnow()
    statement.invoice_number = invoice.get("number") or invoice["id"]
    statement.payment_url = invoice.get("hosted_invoice_url") or ""
    statement.issued_at = now
    statement.due_at = now + timedelta(days=int(current_app.config["SETTLEMENT_DAYS_DUE"]))
    statement.last_error = ""
    statement.status = StatementStatus.paid if invoice.get("status") == "paid" else StatementStatus.issued
    if statement.status == StatementStatus.paid:
        statement.paid_at = now
    else:
        mail_statement(statement, kind="statement.issued", merchant=merchant)
    return statement.status.value


def record_invoicing_error(statement_id: int, error: ProviderError) -> None:
    """After a failed attempt (its unit of work rolled back): count it and keep the error for the back office; an
    error that retrying cannot mend marks the statement for an operator."""
    statement = db.session.get(Statement, statement_id)
    if statement is None or statement.status != StatementStatus.pending:
        return
    statement.invoice_attempts += 1
    statement.last_error = str(error)[:1000]
    if not error.retryable:
        statement.status = StatementStatus.invoice_failed
        statement.failed_at = utcnow()


def invoice_statement_job(statement_id: int) -> str:
    """Issue one statement's invoice; see operations.invoice_statement."""
    try:
        status = invoice_statement(statement_id, PaymentProvider.from_config())
        commit_unit_of_work()
        return status
    except ProviderError as error:
        rollback_unit_of_work()
        log.warning("statement %s: invoicing failed (%s): %s", statement_id,
                    "will retry" if error.retryable else "gave up", error)
        record_invoicing_error(statement_id, error)
        commit_unit_of_work()
        if error.retryable and get_current_job() is not None:
            raise
        return "invoice_failed" if not error.retryable else "pending"
    except Exception:
        rollback_unit_of_work()
        raise


def enqueue_invoicing(statement_id: int) -> None:
    """Invoice the statement after this unit of work, retried with backoff on provider errors."""
    backoff = tuple(int(seconds) for seconds in current_app.config["SETTLEMENT_RETRY_BACKOFF"])
    enqueue(invoice_statement_job, statement_id, retries=len(backoff), backoff=backoff)
