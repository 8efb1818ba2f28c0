"""Operator commands for settlement: the monthly run, fee plans, invoicing, and the local provider's webhook."""

from __future__ import annotations

from urllib.parse import urlparse

import click
import requests
from flask import Flask, current_app
from flask.cli import AppGroup

from metropoints.core.cli import fail_on_domain_error
from metropoints.core.db import commit_unit_of_work, db
from metropoints.settlement import operations, periods
from metropoints.settlement.invoicing import invoice_statement_job
from metropoints.settlement.models import Statement
from metropoints.settlement.queries import statements_to_invoice

settlement_cli = AppGroup("settlement", help="Merchant fees, monthly statements and their invoices.")


@settlement_cli.command("run")
@click.option("--period", help="The month, YYYY-MM (default: the month that ended last).")
@fail_on_domain_error
def run(period: str | None) -> None:
    """Make the month's statements and send them to invoicing; running a month twice makes nothing new."""
    target = periods.parse_period(period) if period else periods.previous_period()
    result = operations.run_period(target)
    commit_unit_of_work()
    for statement_id in result.created:
        statement = db.session.get(Statement, statement_id)
        click.echo(f"statement {statement.id}\tmerchant {statement.merchant_id}\t{statement.coupon_count} coupons\t"
                   f"{statement.total_fen} fen\t{statement.status.value}")
    click.echo(f"{periods.period_label(target)}: {len(result.created)} statements made, "
               f"{result.existing} existed already")


@settlement_cli.command("fee-plan")
@click.argument("merchant_id", type=int)
@click.option("--per-coupon-fen", type=int, required=True, help="Fee per used coupon, in fen.")
@click.option("--monthly-fen", type=int, default=0, show_default=True, help="Monthly listing fee, in fen.")
@fail_on_domain_error
def fee_plan(merchant_id: int, per_coupon_fen: int, monthly_fen: int) -> None:
    """Set a merchant's fees; they apply from next month."""
    plan = operations.set_fee_plan(merchant_id=merchant_id, fee_per_coupon_fen=per_coupon_fen,
                                   monthly_fee_fen=monthly_fen, actor=None, actor_label="cli")
    commit_unit_of_work()
    click.echo(f"merchant {merchant_id}: {plan.fee_per_coupon_fen} fen per used coupon, {plan.monthly_fee_fen} fen "
               f"monthly, from {periods.period_label(plan.effective_from)}")


@settlement_cli.command("invoice")
@click.option("--statement", "statement_id", type=int, help="One statement (default: every pending one).")
@fail_on_domain_error
def invoice(statement_id: int | None) -> None:
    """Invoice pending statements now, here (not on the queue); prints each one's status."""
    ids = [statement_id] if statement_id else statements_to_invoice()
    for one in ids:
        click.echo(f"statement {one}: {invoice_statement_job(one)}")
    click.echo(f"{len(ids)} statements sent")


@settlement_cli.command("provider-webhook")
@click.option("--url", default="http://127.0.0.1:5000/api/v1/webhooks/payments", show_default=True,
              help="Where the provider delivers events.")
def provider_webhook(url: str) -> None:
    """Register this app's webhook at a local provider (localstripe, on loopback) with PAYMENT_WEBHOOK_SECRET.
    A real provider's webhook is set up in its dashboard instead."""
    base = current_app.config["PAYMENT_API_BASE"]
    if urlparse(base).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise click.ClickException(f"{base} is not a local provider; register the webhook in its dashboard.")
    try:
        response = requests.post(f"{base.rstrip('/')}/_config/webhooks/metropoints", timeout=5,
                                 data={"url": url, "secret": current_app.config["PAYMENT_WEBHOOK_SECRET"]})
    except requests.RequestException as error:
        raise click.ClickException(f"the provider at {base} does not answer: {error}") from error
    if response.status_code != 200:
        raise click.ClickException(f"the provider refused: HTTP {response.status_code} {response.text[:200]}")
    click.echo(f"the provider at {base} delivers events to {url}")


def register(app: Flask) -> None:
    """Add this package's commands to the app."""
    app.cli.add_command(settlement_cli)
