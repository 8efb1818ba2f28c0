"""Operator commands of the redemption package."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from metropoints.core.db import commit_unit_of_work
from metropoints.redemption.operations import expire_coupons

coupons_cli = AppGroup("coupons", help="Coupons riders bought with points.")


@coupons_cli.command("expire")
def expire_coupons_command() -> None:
    """Mark the issued coupons past their validity expired (what the scheduled job does); the count on the last
    line."""
    count = expire_coupons()
    commit_unit_of_work()
    click.echo(f"{count} coupons expired")


def register(app: Flask) -> None:
    """Add this package's commands to the app."""
    app.cli.add_command(coupons_cli)
