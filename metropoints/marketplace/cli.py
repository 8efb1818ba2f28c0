"""Operator commands of the marketplace package: cashier accounts for support and bulk onboarding."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from metropoints.core.cli import fail_on_domain_error
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import User
from metropoints.marketplace.operations import create_cashier

staff_cli = AppGroup("staff", help="Merchants' staff accounts.")


@staff_cli.command("create")
@click.argument("email")
@click.option("--store", "store_id", required=True, type=int, help="The id of the store the cashier works at.")
@click.option("--password", required=True, help="At least 8 characters.")
@fail_on_domain_error
def create_staff(email: str, store_id: int, password: str) -> None:
    """Create an active cashier for a store (owners normally invite cashiers in the portal)."""
    member = create_cashier(email=email, store_id=store_id, password=password, actor_label="cli")
    commit_unit_of_work()
    user = db.session.get(User, member.user_id)
    click.echo(f"cashier {user.email} (user id {user.id}) at store {member.store_id} of merchant {member.merchant_id}")


def register(app: Flask) -> None:
    """Add this package's commands to the app."""
    app.cli.add_command(staff_cli)
