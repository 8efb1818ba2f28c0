"""Settlement on SQLite, as `make run` has it: demo data's last month billed and invoiced at localstripe, inline."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from metropoints.core.db import db
from metropoints.settlement.models import Statement, StatementLine, StatementStatus
from tests.settlement.conftest import API_KEY

pytestmark = pytest.mark.sqlite


def test_demo_load_bills_last_month_at_the_provider(sqlite_app, localstripe):
    sqlite_app.config.update(PAYMENT_API_BASE=localstripe.url, PAYMENT_API_KEY=API_KEY)
    runner = sqlite_app.test_cli_runner()
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    (statement,) = db.session.scalars(select(Statement)).all()
    assert (statement.status, statement.coupon_count, statement.total_fen) == (StatementStatus.issued, 6, 1200)
    assert len(db.session.scalars(select(StatementLine)).all()) == 6
    (invoice,) = localstripe.invoices()
    assert (invoice["id"], invoice["total"], invoice["status"]) == (statement.provider_invoice_id, 1200, "open")
    again = runner.invoke(args=["settlement", "run"])
    assert again.exit_code == 0 and "0 statements made, 1 existed already" in again.output
