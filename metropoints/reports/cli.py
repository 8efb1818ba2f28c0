"""Operator commands for the rollups: rebuild them from the raw rows, or verify them against the raw rows."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from metropoints.core.db import commit_unit_of_work, db, is_postgres, rollback_unit_of_work
from metropoints.reports import rollups

reports_cli = AppGroup("reports", help="The rollups behind the reports, the KPI page and the kiosks' city figures.")


@reports_cli.command("rebuild")
def rebuild() -> None:
    """Recompute every rollup from the raw rows (riders, trips, coupons) and replace it."""
    written = rollups.rebuild()
    commit_unit_of_work()
    for table, rows in written.items():
        click.echo(f"{table}: {rows} rows")


@reports_cli.command("verify")
def verify() -> None:
    """Compare every rollup with the raw rows; print each difference and exit 1 when there is one."""
    rollback_unit_of_work()
    if is_postgres():
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    found = rollups.differences()
    rollback_unit_of_work()
    for difference in found:
        click.echo(str(difference))
    if found:
        click.echo(f"{len(found)} differences between the rollups and the raw rows.", err=True)
        sys.exit(1)
    click.echo("The rollups match the raw rows.")


def register(app: Flask) -> None:
    """Add the `reports` command group."""
    app.cli.add_command(reports_cli)
