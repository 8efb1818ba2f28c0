"""Reading settlement: a merchant's statements, one statement's lines and per-campaign sums, receivables, fee plans."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, select

from metropoints.campaigns.models import Campaign
from metropoints.core.db import MAX_ID, db
from metropoints.core.errors import NotFound
from metropoints.core.models import User
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Merchant, MerchantStatus, Store
from metropoints.settlement.models import FeePlan, ProviderEvent, Statement, StatementLine, StatementStatus

# Statements the merchant still owes: issued (overdue once past due) or with a failed payment.
OWED = (StatementStatus.issued, StatementStatus.payment_failed)


def is_overdue(statement: Statement, now: datetime | None = None) -> bool:
    """Owed and past its due date."""
    return statement.status in OWED and statement.due_at is not None and statement.due_at < (now or utcnow())


def statements_of(merchant_id: int) -> list[Statement]:
    """A merchant's statements, newest period first."""
    return list(db.session.scalars(select(Statement).where(Statement.merchant_id == merchant_id)
                                   .order_by(Statement.period.desc())))


def get_statement(statement_id: int, *, merchant_id: int | None = None) -> Statement:
    """A statement by id; with `merchant_id`, only that merchant's (NotFound otherwise: we do not say whose)."""
    statement = db.session.get(Statement, statement_id) if 0 < statement_id <= MAX_ID else None
    if statement is None or (merchant_id is not None and statement.merchant_id != merchant_id):
        raise NotFound("No such statement.")
    return statement


@dataclass(frozen=True)
class BilledMerchant:
    """The merchant a statement bills, as the statement names it. The merchant keeps no registered address, so the
    address is that of its first store (active ones first); "" without stores."""

    name: str
    licence_no: str  # the business licence's unified social credit code
    contact_name: str
    contact_phone: str
    owner_email: str
    address: str


def billed_merchant(merchant_id: int) -> BilledMerchant:
    """The statement's merchant: its name, licence, contact and an address; two indexed reads."""
    merchant, owner_email = db.session.execute(
        select(Merchant, User.email).join(User, User.id == Merchant.owner_id)
        .where(Merchant.id == merchant_id)).one()
    address = db.session.scalar(select(Store.address).where(Store.merchant_id == merchant_id)
                                .order_by(Store.active.desc(), Store.id).limit(1))
    return BilledMerchant(merchant.name, merchant.licence_no, merchant.contact_name, merchant.contact_phone,
                          owner_email, address or "")


@dataclass(frozen=True)
class CampaignSum:
    campaign_id: int
    title: str
    coupons: int
    fees_fen: int


def sums_by_campaign(statement_id: int) -> list[CampaignSum]:
    """The statement's used coupons and fees per campaign."""
    rows = db.session.execute(
        select(StatementLine.campaign_id, Campaign.title, func.count(StatementLine.id), func.sum(StatementLine.fee_fen))
        .join(Campaign, Campaign.id == StatementLine.campaign_id)
        .where(StatementLine.statement_id == statement_id)
        .group_by(StatementLine.campaign_id, Campaign.title).order_by(StatementLine.campaign_id))
    return [CampaignSum(cid, title, int(count), int(fees)) for cid, title, count, fees in rows]


def statement_lines(statement_id: int, *, limit: int | None = None) -> Iterator:
    """The statement's lines in order of use: coupon, campaign title, store name, used at, fee."""
    query = (select(StatementLine.coupon_id, Campaign.title, Store.name.label("store_name"), StatementLine.used_at,
                    StatementLine.fee_fen)
             .join(Campaign, Campaign.id == StatementLine.campaign_id)
             .outerjoin(Store, Store.id == StatementLine.store_id)
             .where(StatementLine.statement_id == statement_id)
             .order_by(StatementLine.used_at, StatementLine.coupon_id)
             .execution_options(yield_per=1000))
    if limit is not None:
        query = query.limit(limit)
    return iter(db.session.execute(query))


@dataclass(frozen=True)
class Receivables:
    """Sums for the back office, in fen, with counts."""

    issued_fen: int
    issued_count: int
    overdue_fen: int
    overdue_count: int
    paid_fen: int
    paid_count: int
    attention_count: int  # pending for long, or refused by the provider
    declined_fen: int  # owed, its last payment declined (counted in issued or overdue too)
    declined_count: int


def receivables(now: datetime | None = None) -> Receivables:
    """Issued (owed, not yet due), overdue, paid, statements needing an operator, and those whose payment was
    declined; one aggregate query."""
    now = now or utcnow()
    owed = Statement.status.in_(OWED)
    overdue = and_(owed, Statement.due_at < now)
    declined = Statement.status == StatementStatus.payment_failed

    def total(condition):
        """SQL: the sum of the matching statements' totals."""
        return func.coalesce(func.sum(case((condition, Statement.total_fen), else_=0)), 0)

    def count(condition):
        """SQL: how many statements match."""
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = db.session.execute(select(
        total(and_(owed, ~overdue)), count(and_(owed, ~overdue)), total(overdue), count(overdue),
        total(Statement.status == StatementStatus.paid), count(Statement.status == StatementStatus.paid),
        count(Statement.status.in_((StatementStatus.pending, StatementStatus.invoice_failed))),
        total(declined), count(declined))).one()
    return Receivables(*(int(value) for value in row))


def receivable_statements(state: str, now: datetime | None = None) -> list[tuple[Statement, str]]:
    """Statements in one state (owed, overdue, declined, paid, attention, all) with their merchant's name, newest
    first."""
    now = now or utcnow()
    conditions = {
        "owed": Statement.status.in_(OWED),
        "overdue": and_(Statement.status.in_(OWED), Statement.due_at < now),
        "declined": Statement.status == StatementStatus.payment_failed,
        "paid": Statement.status == StatementStatus.paid,
        "attention": Statement.status.in_((StatementStatus.pending, StatementStatus.invoice_failed)),
    }
    query = (select(Statement, Merchant.name).join(Merchant, Merchant.id == Statement.merchant_id)
             .order_by(Statement.period.desc(), Merchant.name).limit(500))
    if state in conditions:
        query = query.where(conditions[state])
    return list(db.session.execute(query).tuples())


@dataclass(frozen=True)
class PlanRow:
    """A merchant and its fee plans: in force this period, and from the next one if that differs."""

    merchant: Merchant
    current: FeePlan | None
    upcoming: FeePlan | None


def fee_plan_rows(period: date) -> list[PlanRow]:
    """Approved and suspended merchants with their plans for `period` and after."""
    merchants = db.session.scalars(select(Merchant).where(Merchant.status.in_(
        (MerchantStatus.approved, MerchantStatus.suspended))).order_by(Merchant.name)).all()
    plans: dict[int, list[FeePlan]] = {}
    for plan in db.session.scalars(select(FeePlan).order_by(FeePlan.effective_from)):
        plans.setdefault(plan.merchant_id, []).append(plan)
    rows = []
    for merchant in merchants:
        mine = plans.get(merchant.id, [])
        current = next((p for p in reversed(mine) if p.effective_from <= period), None)
        upcoming = next((p for p in mine if p.effective_from > period), None)
        rows.append(PlanRow(merchant, current, upcoming))
    return rows


def events_of(statement_id: int) -> list[ProviderEvent]:
    """The provider's events applied to (or ignored for) a statement, in the order received."""
    return list(db.session.scalars(select(ProviderEvent).where(ProviderEvent.statement_id == statement_id)
                                   .order_by(ProviderEvent.id)))


def statements_to_invoice(*, older_than: timedelta = timedelta(0), now: datetime | None = None) -> list[int]:
    """Pending statements (made before `older_than` ago): those whose invoicing has not finished."""
    cutoff = (now or utcnow()) - older_than
    return list(db.session.scalars(select(Statement.id).where(Statement.status == StatementStatus.pending,
                                                              Statement.created_at <= cutoff)
                                   .order_by(Statement.id)))
