"""Operator commands for the rollups (rebuild them from the raw rows, or verify them against the raw rows) and the
carbon export for a registry."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from metropoints.core.db import commit_unit_of_work, db, is_postgres, rollback_unit_of_work
from metropoints.core.errors import DomainError
from metropoints.reports import operations, rollups

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


carbon_cli = AppGroup("carbon", help="The carbon account: exports for a carbon registry.")


@carbon_cli.command("export")
@click.option("--period", required=True, help="The month, YYYY-MM: the trips of its service days (Asia/Shanghai).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, writable=True),
              help="The directory the CSV files (one per mode) and the JSON summary are written to (made if missing).")
def export(period: str, out_dir: str) -> None:
    """Export a month's credited trips not exported before, and the corrections of those that were, per mode (CSV,
    UTF-8, with km, grams and rule version) with a JSON summary of the totals and each file's SHA-256."""
    try:
        result = operations.export_period(period=period, out_dir=out_dir, actor_label="cli")
    except DomainError as error:
        rollback_unit_of_work()
        raise click.BadParameter(error.message, param_hint="--out" if error.fields.get("field") == "out"
                                 else "--period") from None
    try:
        commit_unit_of_work()
    except Exception:
        for path in result.paths:  # no export claims them
            path.unlink(missing_ok=True)
        raise
    for mode_file in result.files:
        click.echo(f"{mode_file.path}: {mode_file.trip_lines} trips, {mode_file.adjustment_lines} adjustments, "
                   f"{operations.km(mode_file.metres):.3f} km, {mode_file.co2e_grams} g CO2e, "
                   f"sha256 {mode_file.sha256}")
    click.echo(f"export {result.export.id} of {result.export.period:%Y-%m}: {result.export.trip_lines} trips, "
               f"{result.export.adjustment_lines} adjustments; summary {result.summary_path}")


def register(app: Flask) -> None:
    """Add the `reports` and `carbon` command groups."""
    app.cli.add_command(reports_cli)
    app.cli.add_command(carbon_cli)
