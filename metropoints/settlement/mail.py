"""Mail to a merchant's owner about a statement: issued (its amount, due date and links), a payment failed (the
provider's reason, pay again through the link, whom to contact), overdue. Each carries the period, the amount in yuan
and the links to the statement's page in the portal and to the provider's payment page. Queued in the unit of work
that changes the statement, so a change rolled back mails nothing (core.mail)."""

from __future__ import annotations

from flask import current_app

from metropoints.core.db import db
from metropoints.core.mail import mail_user, public_link
from metropoints.core.models import User
from metropoints.core.templating import yuan
from metropoints.marketplace.models import Merchant
from metropoints.settlement.declines import read_decline
from metropoints.settlement.models import Statement
from metropoints.settlement.periods import period_label

# The mail's kind -> its template.
STATEMENT_TEMPLATES = {
    "statement.issued": "settlement/mail/statement_issued.txt",
    "statement.payment_failed": "settlement/mail/payment_failed.txt",
    "statement.overdue": "settlement/mail/statement_overdue.txt",
}


def mail_statement(statement: Statement, *, kind: str, merchant: Merchant | None = None,
                   owner: User | None = None) -> None:
    """Queue a mail about the statement (a kind of STATEMENT_TEMPLATES) to its merchant's owner, in the owner's
    language; `merchant` and `owner` when the caller has them loaded already."""
    merchant = merchant or db.session.get(Merchant, statement.merchant_id)
    owner = owner or db.session.get(User, merchant.owner_id)
    mail_user(owner, kind=kind, template=STATEMENT_TEMPLATES[kind], statement=statement, merchant=merchant,
              period=period_label(statement.period), amount=yuan(statement.total_fen),
              link=public_link("settlement.statement", statement_id=statement.id),
              decline=read_decline(statement.last_error) if kind == "statement.payment_failed" else None,
              contact=str(current_app.config.get("PLATFORM_CONTACT_EMAIL") or ""))
