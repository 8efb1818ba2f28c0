"""Settlement's rules: fee plans, the monthly statements, and the provider's events (invoicing: invoicing.py).

Invariant 5: every used coupon lands on exactly one statement (a unique coupon id on the lines, and a period's run
takes only coupons on no statement yet); every statement is invoiced at most once; each provider event is applied
once (its id is kept, unique). Amounts are integer fen everywhere, at the provider too (CNY's minor unit).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from metropoints.campaigns.models import Campaign
from metropoints.core.db import MAX_ID, db, is_postgres, rollback_unit_of_work
from metropoints.core.errors import Conflict, MalformedJson, NotFound
from metropoints.core.models import User
from metropoints.core.operations import record_audit
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Merchant, MerchantStatus
from metropoints.marketplace.queries import get_merchant
from metropoints.redemption.models import Coupon, CouponDay, CouponStatus
from metropoints.settlement.declines import decline_of
from metropoints.settlement.errors import (
    BadSignature,
    InvalidFee,
    PeriodNotEnded,
    PeriodSuperseded,
    StaleTimestamp,
    StatementNotReady,
)
from metropoints.settlement.invoicing import enqueue_invoicing
from metropoints.settlement.mail import mail_statement
from metropoints.settlement.models import (
    FeePlan,
    ProviderEvent,
    Statement,
    StatementLine,
    StatementStatus,
)
from metropoints.settlement.periods import next_period, period_label, period_of, period_start
from metropoints.settlement.queries import OWED, get_statement

MAX_FEE_FEN = 10_000_000
OVERDUE_BATCH = 500  # statements mailed as overdue per unit of work


# Fee plans.

@dataclass(frozen=True)
class Fees:
    """The fees of one merchant in one period."""

    fee_per_coupon_fen: int
    monthly_fee_fen: int


def _fee(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FEE_FEN:
        raise InvalidFee(f"{name}: fees are whole numbers of fen, from 0 to {MAX_FEE_FEN:,}.", field=name)
    return value


def fees_for(merchant_id: int, period: date) -> Fees:
    """The plan in force for the period: the newest one effective from it or before; the default otherwise."""
    plan = db.session.scalar(select(FeePlan).where(FeePlan.merchant_id == merchant_id,
                                                   FeePlan.effective_from <= period)
                             .order_by(FeePlan.effective_from.desc()).limit(1))
    if plan is None:
        return Fees(int(current_app.config["SETTLEMENT_DEFAULT_FEE_FEN"]), 0)
    return Fees(plan.fee_per_coupon_fen, plan.monthly_fee_fen)


def set_fee_plan(*, merchant_id: int, fee_per_coupon_fen: object, monthly_fee_fen: object, actor: User | None,
                 now: datetime | None = None, actor_label: str = "") -> FeePlan:
    """Set a merchant's fees from the next period on (the current one is billed as it began). Setting them twice
    in a month keeps the last values."""
    if type(merchant_id) is not int or not 0 < merchant_id <= MAX_ID:
        raise NotFound("No such merchant.")
    merchant = get_merchant(merchant_id)
    per_coupon = _fee(fee_per_coupon_fen, "fee_per_coupon_fen")
    monthly = _fee(monthly_fee_fen, "monthly_fee_fen")
    effective = next_period(period_of(now or utcnow()))
    plan = db.session.scalar(select(FeePlan).where(FeePlan.merchant_id == merchant.id,
                                                   FeePlan.effective_from == effective).with_for_update())
    if plan is None:
        plan = FeePlan(merchant_id=merchant.id, effective_from=effective)
        db.session.add(plan)
    plan.fee_per_coupon_fen, plan.monthly_fee_fen = per_coupon, monthly
    plan.set_by, plan.set_at = (actor.id if actor else None), utcnow()
    db.session.flush()
    record_audit(actor=actor, actor_label=actor_label, action="settlement.fee_plan",
                 subject=f"merchant {merchant.id}",
                 reason=f"from {period_label(effective)}: {per_coupon} fen per used coupon, {monthly} fen monthly")
    return plan


# The monthly run.

@dataclass(frozen=True)
class RunResult:
    """What a period's run did: statements made now (ids) and those that existed already."""

    period: date
    created: list[int]
    existing: int


def _unbilled_used_coupons(end: datetime):
    """SQL: used coupons, used before `end`, on no statement yet, with their campaign's merchant (the partial index
    of unbilled used coupons: the run reads the coupons it bills, not every coupon ever used)."""
    return (select(Coupon.id, Coupon.campaign_id, Coupon.used_store_id, Coupon.used_at, Campaign.merchant_id)
            .join(Campaign, Campaign.id == Coupon.campaign_id)
            .where(Coupon.status == CouponStatus.used, Coupon.billed.is_(False), Coupon.used_at < end))


def run_period(period: date, *, now: datetime | None = None) -> RunResult:
    """Make the period's statements: one per merchant with activity — used coupons not billed yet (used before the
    month's end; a coupon whose use reached us after an earlier run lands on the next statement), or coupons
    bought during the month — or a monthly fee. A statement with nothing to pay is `nothing_due` and not invoiced.

    Running a period again makes nothing new for merchants that have its statement. Runs are serialised by a table
    lock, so two at once cannot bill a coupon twice (the unique coupon id on the lines would refuse it anyway)."""
    now = now or utcnow()
    end = period_start(next_period(period))
    if end > now:
        raise PeriodNotEnded(f"{period_label(period)} ends at {end.isoformat()}.")
    if is_postgres():
        db.session.execute(text("LOCK TABLE statements IN SHARE ROW EXCLUSIVE MODE"))
    if db.session.scalar(select(func.count(Statement.id)).where(Statement.period > period)):
        raise PeriodSuperseded()
    unbilled = _unbilled_used_coupons(end).subquery()
    used_by_merchant = dict(db.session.execute(
        select(unbilled.c.merchant_id, func.count()).group_by(unbilled.c.merchant_id)).tuples().all())
    # Coupons bought during the month, from the rollup of the month's days (an Asia/Shanghai month, as the period).
    bought = set(db.session.scalars(
        select(Campaign.merchant_id).join(CouponDay, CouponDay.campaign_id == Campaign.id)
        .where(CouponDay.service_day >= period, CouponDay.service_day < next_period(period), CouponDay.bought > 0)
        .distinct()))
    existing = set(db.session.scalars(select(Statement.merchant_id).where(Statement.period == period)))
    approved = set(db.session.scalars(select(Merchant.id).where(Merchant.status == MerchantStatus.approved)))
    created: list[Statement] = []
    for merchant_id in sorted((set(used_by_merchant) | bought | approved) - existing):
        fees = fees_for(merchant_id, period)
        monthly = fees.monthly_fee_fen if merchant_id in approved else 0
        if merchant_id not in used_by_merchant and merchant_id not in bought and monthly == 0:
            continue  # no activity and nothing owed
        statement = Statement(merchant_id=merchant_id, period=period, status=StatementStatus.pending,
                              currency=current_app.config["SETTLEMENT_CURRENCY"],
                              fee_per_coupon_fen=fees.fee_per_coupon_fen, monthly_fee_fen=monthly,
                              coupon_count=0, coupon_fees_fen=0, total_fen=monthly, created_at=now)
        db.session.add(statement)
        created.append(statement)
    db.session.flush()
    if created:
        _add_lines([s.id for s in created], end)
    sums = {statement_id: (int(count), int(fees)) for statement_id, count, fees in db.session.execute(
        select(StatementLine.statement_id, func.count(StatementLine.id), func.sum(StatementLine.fee_fen))
        .where(StatementLine.statement_id.in_([s.id for s in created]))
        .group_by(StatementLine.statement_id))} if created else {}
    for statement in created:
        statement.coupon_count, statement.coupon_fees_fen = sums.get(statement.id, (0, 0))
        statement.total_fen = statement.coupon_fees_fen + statement.monthly_fee_fen
        if statement.total_fen == 0:
            statement.status = StatementStatus.nothing_due
        else:
            enqueue_invoicing(statement.id)
    record_audit(actor=None, actor_label="settlement", action="settlement.run", subject=period_label(period),
                 reason=f"{len(created)} statements made, {len(existing)} existed")
    return RunResult(period, [s.id for s in created], len(existing))


def _add_lines(statement_ids: list[int], end: datetime) -> None:
    """One INSERT ... SELECT: each unbilled used coupon onto its merchant's new statement, at that statement's fee."""
    unbilled = _unbilled_used_coupons(end).subquery()
    rows = (select(Statement.id, unbilled.c.id, unbilled.c.campaign_id, unbilled.c.used_store_id,
                   unbilled.c.used_at, Statement.fee_per_coupon_fen)
            .join(Statement, Statement.merchant_id == unbilled.c.merchant_id)
            .where(Statement.id.in_(statement_ids)))
    db.session.execute(
        insert(StatementLine.__table__).from_select(["statement_id", "coupon_id", "campaign_id", "store_id",
                                                     "used_at", "fee_fen"], rows))
    db.session.execute(
        update(Coupon).where(Coupon.id.in_(select(StatementLine.coupon_id)
                                           .where(StatementLine.statement_id.in_(statement_ids))))
        .values(billed=True).execution_options(synchronize_session=False))


def retry_invoicing(statement_id: int, *, actor: User | None, actor_label: str = "") -> Statement:
    """An operator sends a statement whose invoicing failed (or stalled) to the provider again."""
    statement = get_statement(statement_id)
    if statement.status not in (StatementStatus.pending, StatementStatus.invoice_failed):
        raise Conflict("This statement's invoice was issued already.", status=statement.status.value)
    statement.status = StatementStatus.pending
    enqueue_invoicing(statement.id)
    record_audit(actor=actor, actor_label=actor_label, action="settlement.retry_invoicing",
                 subject=f"statement {statement.id}")
    return statement


# The provider's webhooks.

# Event types and the statement status they lead to.
PAID_EVENTS = {"invoice.paid", "invoice.payment_succeeded", "payment_intent.succeeded"}
FAILED_EVENTS = {"invoice.payment_failed", "payment_intent.payment_failed"}
# The two events of one declined payment arrive seconds apart; a failure event later than this is a new attempt.
PAIRED_FAILURE_WINDOW = timedelta(minutes=10)


def verify_signature(payload: bytes, header: str | None, *, secret: str, tolerance: int, now: datetime) -> None:
    """Check a Stripe-Signature header (`t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload">`, several v1 allowed
    while a secret is rolled): the signature must match and its time lie within the tolerance of ours."""
    parts = [item.split("=", 1) for item in (header or "").split(",") if "=" in item]
    timestamps = [value for name, value in parts if name.strip() == "t"]
    signatures = [value.strip() for name, value in parts if name.strip() == "v1"]
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit() or not signatures:
        raise BadSignature("The Stripe-Signature header is missing or malformed.")
    timestamp = int(timestamps[0])
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise BadSignature()
    if abs(now.timestamp() - timestamp) > tolerance:
        raise StaleTimestamp()


@dataclass(frozen=True)
class EventOutcome:
    """What receiving an event did."""

    event_id: str
    outcome: str  # paid, payment_failed, ignored, unchanged, duplicate
    statement_id: int | None = None


def _invoice_of(event_type: str, obj: dict[str, Any]) -> str | None:
    """The invoice id an event is about (None when it names none, or not as a string)."""
    invoice = obj.get("id") if event_type.startswith("invoice.") else obj.get("invoice")
    if isinstance(invoice, dict):
        invoice = invoice.get("id")
    return invoice if isinstance(invoice, str) else None


def _unix_time(value: object) -> int:
    """The event's `created`, or 0 when it is not a plausible Unix time."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else 0


def receive_event(payload: bytes, signature_header: str | None, *, now: datetime | None = None) -> EventOutcome:
    """Verify, record and apply one webhook event. A replayed event (same id) changes nothing; an event for an
    invoice whose statement has not recorded it yet is refused (StatementNotReady) so the provider sends it again."""
    config = current_app.config
    now = now or utcnow()
    verify_signature(payload, signature_header, secret=config["PAYMENT_WEBHOOK_SECRET"],
                     tolerance=int(config["PAYMENT_WEBHOOK_TOLERANCE_SECONDS"]), now=now)
    try:
        event = json.loads(payload)
    except ValueError:
        event = None
    data = event.get("data") if isinstance(event, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise MalformedJson("An event is a JSON object with id, type and data.object.")
    event_id, event_type = event["id"][:80], event["type"][:80]
    if db.session.scalar(select(ProviderEvent.id).where(ProviderEvent.event_id == event_id)) is not None:
        return EventOutcome(event_id, "duplicate")
    statement = None
    invoice_id = _invoice_of(event_type, obj)
    if invoice_id and (event_type in PAID_EVENTS or event_type in FAILED_EVENTS):
        statement = db.session.scalar(select(Statement).where(Statement.provider_invoice_id == invoice_id)
                                      .with_for_update())
        metadata = obj.get("metadata")
        statement_ref = metadata.get("statement_id") if isinstance(metadata, dict) and \
            event_type.startswith("invoice.") else None
        if statement is None and statement_ref and str(statement_ref).isdigit() and \
                db.session.get(Statement, int(statement_ref)) is not None:
            raise StatementNotReady()
    outcome = _apply(statement, event_type, obj, now) if statement is not None else "ignored"
    try:
        with db.session.begin_nested():
            db.session.add(ProviderEvent(event_id=event_id, type=event_type, created=_unix_time(event.get("created")),
                                         received_at=now, statement_id=statement.id if statement else None,
                                         outcome=outcome, payload=payload.decode("utf-8", "replace")[:20_000]))
    except IntegrityError:
        # The same event, delivered twice at once: the other delivery applied it (and queued its mail, not this one).
        rollback_unit_of_work()
        return EventOutcome(event_id, "duplicate")
    return EventOutcome(event_id, outcome, statement.id if statement else None)


def _apply(statement: Statement, event_type: str, obj: dict[str, Any], now: datetime) -> str:
    """Move the statement as the event says; paid is final, so a late failure after a payment changes nothing.
    A failure keeps its time and the provider's reason (declines.py) on the statement. One declined payment brings
    two events (the payment intent's, with the reason, and the invoice's, without), in either order: an event
    without a reason within PAIRED_FAILURE_WINDOW of the last failure keeps that failure's reason. A statement that
    turns payment_failed is mailed to its owner (pay again through the link) once: the second event finds it
    failed already."""
    if statement.status == StatementStatus.paid:
        return "unchanged"
    if event_type in PAID_EVENTS:
        statement.status, statement.paid_at, statement.last_error = StatementStatus.paid, now, ""
        return "paid"
    decline = decline_of(obj)
    newly_failed = statement.status != StatementStatus.payment_failed
    same_failure = not newly_failed and statement.failed_at is not None and \
        abs(now - statement.failed_at) <= PAIRED_FAILURE_WINDOW
    if decline is not None or not same_failure:
        statement.last_error = decline.stored() if decline else ""
    statement.status, statement.failed_at = StatementStatus.payment_failed, now
    if newly_failed:
        mail_statement(statement, kind="statement.payment_failed")
    return "payment_failed"


# Overdue statements.

def mail_overdue(*, now: datetime | None = None, limit: int = OVERDUE_BATCH) -> list[int]:
    """Mail the owner of each statement newly past its due date, once: owed, due before `now` and not mailed yet;
    `overdue_notified_at` is set in the unit of work that queues the mail. At most `limit`, the longest overdue
    first, read through the partial index of owed statements not yet mailed (bounded by what is owed now, not by
    history). Rows another run holds are skipped (SKIP LOCKED), so two runs never mail one statement twice. The ids
    mailed."""
    now = now or utcnow()
    rows = db.session.execute(
        select(Statement, Merchant, User).join(Merchant, Merchant.id == Statement.merchant_id)
        .join(User, User.id == Merchant.owner_id)
        .where(Statement.overdue_notified_at.is_(None), Statement.status.in_(OWED), Statement.due_at < now)
        .order_by(Statement.due_at, Statement.id).limit(limit)
        .with_for_update(of=Statement, skip_locked=True)).tuples().all()
    for statement, merchant, owner in rows:
        statement.overdue_notified_at = now
        mail_statement(statement, kind="statement.overdue", merchant=merchant, owner=owner)
    db.session.flush()
    return [statement.id for statement, _merchant, _owner in rows]
