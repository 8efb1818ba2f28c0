"""Settlement pages: the merchant owner's statements (lines, totals, status, CSV, printable, the provider's payment
link) and the back office's fee plans and receivables."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from metropoints.core.csvexport import csv_download
from metropoints.core.errors import NotFound
from metropoints.core.forms import ActionForm
from metropoints.core.models import Role
from metropoints.core.portal import add_nav, role_required
from metropoints.core.signin import step_up_required
from metropoints.core.templating import yuan
from metropoints.core.timeutil import isoformat, utcnow
from metropoints.marketplace.queries import portal_membership
from metropoints.settlement import operations, periods, queries
from metropoints.settlement.declines import read_decline
from metropoints.settlement.forms import FeePlanForm, yuan_text
from metropoints.settlement.models import Statement, StatementStatus

bp = Blueprint("settlement", __name__)
owner_only = role_required(Role.merchant_owner)
operator_only = role_required(Role.operator)
add_nav("settlement.statements", _l("Statements"), Role.merchant_owner, order=40)
add_nav("settlement.receivables", _l("Receivables"), Role.operator, order=40)
add_nav("settlement.fee_plans", _l("Fees"), Role.operator, order=45)

# Lines shown on the statement page; the CSV and the printable page have them all.
PAGE_LINES = 200
STATUS_LABELS = {
    StatementStatus.pending: _l("Being issued"),
    StatementStatus.issued: _l("Issued"),
    StatementStatus.paid: _l("Paid"),
    StatementStatus.payment_failed: _l("Payment failed"),
    StatementStatus.nothing_due: _l("Nothing due"),
    StatementStatus.invoice_failed: _l("Invoice refused by the provider"),
}
OVERDUE = _l("Overdue")
OVERDUE_FAILED = _l("Payment failed, overdue")
RECEIVABLE_STATES = {"owed": _l("Owed"), "overdue": OVERDUE, "declined": _l("Payment declined"), "paid": _l("Paid"),
                     "attention": _l("Needs attention"), "all": _l("All")}
# A merchant id as the fee form posts it: ASCII digits only (str.isdigit takes ² and other scripts' digits).
MERCHANT_ID = re.compile(r"[0-9]{1,18}", re.ASCII)
CSV_HEADER = ("statement_id", "period", "coupon_id", "campaign", "store", "used_at", "fee_fen")


# The money filter's older name (core.templating registers `yuan`): the same formatter, for templates that still
# write `|fen`.
bp.add_app_template_filter(yuan, "fen")


def status_label(statement: Statement) -> str:
    """The statement's status as the portal names it; owed past the due date is overdue (a declined payment past
    its due date says both)."""
    if not queries.is_overdue(statement):
        return str(STATUS_LABELS[statement.status])
    return str(OVERDUE_FAILED if statement.status == StatementStatus.payment_failed else OVERDUE)


@dataclass(frozen=True)
class Platform:
    """The platform that bills, as its statements name it (the PLATFORM_* settings; empty ones are left off)."""

    name: str
    legal_name: str
    address: str
    tax_id: str
    contact_email: str


def billing_platform() -> Platform:
    """The platform's details from the settings (a number given in the environment is read as its digits)."""
    config = current_app.config
    return Platform(*(str(config.get(f"PLATFORM_{name}") or "")
                      for name in ("NAME", "LEGAL_NAME", "ADDRESS", "TAX_ID", "CONTACT_EMAIL")))


# The merchant owner.

def billing_merchant_id() -> int:
    """The logged-in owner's merchant. Unlike the rest of the portal, a suspended merchant's owner still sees and
    pays its statements: suspension takes the campaigns off sale, not the bills away."""
    return portal_membership(current_user, owner=True, suspended_ok=True).merchant_id


@bp.get("/portal/statements")
@owner_only
def statements():
    """The owner's statements, newest month first."""
    return render_template("settlement/statements.html", statements=queries.statements_of(billing_merchant_id()),
                           status_label=status_label, is_overdue=queries.is_overdue)


def _owners_statement(statement_id: int) -> Statement:
    """One of the logged-in owner's statements (404 for another merchant's)."""
    return queries.get_statement(statement_id, merchant_id=billing_merchant_id())


def _render_statement(statement: Statement, template: str, limit: int | None, **extra):
    """A statement's page or printed copy: who bills whom, its amounts and lines, and a declined payment's reason
    and what to do."""
    failed = statement.status == StatementStatus.payment_failed
    return render_template(template, statement=statement, **extra, status_label=status_label(statement),
                           overdue=queries.is_overdue(statement), period=periods.period_label(statement.period),
                           campaigns=queries.sums_by_campaign(statement.id),
                           lines=queries.statement_lines(statement.id, limit=limit), limit=limit,
                           merchant=queries.billed_merchant(statement.merchant_id), platform=billing_platform(),
                           decline=read_decline(statement.last_error) if failed else None)


@bp.get("/portal/statements/<id:statement_id>")
@owner_only
def statement(statement_id: int):
    """The owner's statement: who bills whom, totals, status, the first lines, and how to pay."""
    return _render_statement(_owners_statement(statement_id), "settlement/statement.html", PAGE_LINES)


@bp.get("/portal/statements/<id:statement_id>/print")
@owner_only
def statement_print(statement_id: int):
    """Every line, laid out for paper."""
    return _render_statement(_owners_statement(statement_id), "settlement/print.html", None)


def _csv_rows(statement_id: int, period: str) -> Iterator[tuple]:
    """A CSV row per used coupon of the statement. It runs while the reply streams, after the request's commit has
    expired every loaded row, so it takes plain values, never the Statement itself."""
    for coupon_id, title, store_name, used_at, fee in queries.statement_lines(statement_id):
        yield (statement_id, period, coupon_id, title, store_name or "", isoformat(used_at), fee)


@bp.get("/portal/statements/<id:statement_id>.csv")
@owner_only
def statement_csv(statement_id: int):
    """The statement's lines as a streamed CSV download."""
    statement = _owners_statement(statement_id)
    period = periods.period_label(statement.period)
    return csv_download(f"statement-{period}-{statement.id}.csv", CSV_HEADER, _csv_rows(statement.id, period))


# The back office.

@bp.get("/backoffice/receivables")
@operator_only
def receivables():
    """The back office's receivables: totals, and the statements of one state."""
    state = request.args.get("state", "owed")
    if state not in RECEIVABLE_STATES:
        state = "owed"
    return render_template("settlement/receivables.html", totals=queries.receivables(), state=state,
                           states=RECEIVABLE_STATES, rows=queries.receivable_statements(state),
                           status_label=status_label, read_decline=read_decline, form=ActionForm())


RECEIVABLES_CSV_HEADER = ("statement_id", "merchant", "period", "status", "total_fen", "coupons", "issued_at", "due_at",
                          "paid_at", "overdue", "invoice_number")


def _receivable_rows(state: str) -> Iterator[tuple]:
    """A CSV row per statement in one state (the same statements the page lists)."""
    now = utcnow()
    for statement, merchant_name in queries.receivable_statements(state, now):
        yield (statement.id, merchant_name, periods.period_label(statement.period), statement.status.value,
               statement.total_fen, statement.coupon_count, isoformat(statement.issued_at),
               isoformat(statement.due_at), isoformat(statement.paid_at),
               "yes" if queries.is_overdue(statement, now) else "no", statement.invoice_number or "")


@bp.get("/backoffice/receivables.csv")
@operator_only
def receivables_csv():
    """The receivables of one state (as the page shows them) as a CSV download, for the finance team."""
    state = request.args.get("state", "owed")
    if state not in RECEIVABLE_STATES:
        state = "owed"
    # Rows are read now, not while streaming: the commit after the view expires the loaded statements.
    rows = list(_receivable_rows(state))
    return csv_download(f"receivables-{state}-{utcnow():%Y%m%d}.csv", RECEIVABLES_CSV_HEADER, rows)


@bp.get("/backoffice/statements/<id:statement_id>")
@operator_only
def backoffice_statement(statement_id: int):
    """A statement as the back office sees it, with the provider's invoice and events."""
    statement = queries.get_statement(statement_id)
    return _render_statement(statement, "settlement/statement.html", PAGE_LINES,
                             events=queries.events_of(statement.id))


@bp.post("/backoffice/statements/<id:statement_id>/retry")
@operator_only
@step_up_required
def retry(statement_id: int):
    """Send a statement whose invoicing stalled or was refused to the provider again."""
    if not ActionForm().validate_on_submit():
        flash(_("The form expired; please try again."))
    else:
        operations.retry_invoicing(statement_id, actor=current_user)
        flash(_("Statement %(id)s was sent to the payment provider again.", id=statement_id))
    return redirect(url_for("settlement.receivables", state="attention"))


@bp.route("/backoffice/fees", methods=["GET", "POST"])
@operator_only
@step_up_required
def fee_plans():
    """Each merchant's fees now and from next month, and a form to change them from next month."""
    form = FeePlanForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            if not MERCHANT_ID.fullmatch(str(form.merchant_id.data)):
                raise NotFound("No such merchant.")
            plan = operations.set_fee_plan(merchant_id=int(form.merchant_id.data),
                                           fee_per_coupon_fen=form.fee_per_coupon.data,
                                           monthly_fee_fen=form.monthly_fee.data, actor=current_user)
            flash(_("Fees set from %(period)s.", period=periods.period_label(plan.effective_from)))
            return redirect(url_for("settlement.fee_plans"))
        if "csrf_token" in form.errors:
            flash(_("The form expired; please try again."))
        status = 422
    period = periods.period_of(utcnow())
    return render_template("settlement/fees.html", rows=queries.fee_plan_rows(period), form=form,
                           period=periods.period_label(period),
                           next_period=periods.period_label(periods.next_period(period)),
                           default_fee=current_app.config["SETTLEMENT_DEFAULT_FEE_FEN"], yuan_text=yuan_text), status
