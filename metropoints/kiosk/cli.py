"""Operator commands for station kiosks."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from metropoints.core.cli import fail_on_domain_error
from metropoints.core.db import commit_unit_of_work
from metropoints.core.timeutil import isoformat
from metropoints.kiosk import operations

kiosks_cli = AppGroup("kiosks", help="Station kiosks (the big screens).")


@kiosks_cli.command("create")
@click.argument("station_id")
@click.option("--label", default="", help="Where the screen stands, e.g. 'Exit B concourse'.")
@fail_on_domain_error
def create_kiosk(station_id: str, label: str) -> None:
    """Create a kiosk bound to a station and print its token (shown this once only), on the last line."""
    kiosk, token = operations.create_kiosk(station_id=station_id, label=label, actor_label="cli")
    commit_unit_of_work()
    click.echo(f"kiosk {kiosk.id} at station {kiosk.station_id}; open /kiosk#token=<token> on the screen. "
               "Its token, shown once:")
    click.echo(token)


@kiosks_cli.command("list")
def list_kiosks() -> None:
    """Print every kiosk (id, station, station name, label, live tokens, created); the count on the last line."""
    rows = operations.kiosks_with_stations()
    for kiosk, station, tokens in rows:
        click.echo(f"{kiosk.id}\t{station.station_id}\t{station.name_zh} {station.name_en}\t{kiosk.label}\t"
                   f"{tokens} token(s)\t{isoformat(kiosk.created_at)}")
    click.echo(f"{len(rows)} kiosks")


def register(app: Flask) -> None:
    """Add this package's commands to the app."""
    app.cli.add_command(kiosks_cli)
