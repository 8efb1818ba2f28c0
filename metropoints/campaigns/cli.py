"""Operator commands of the campaigns package."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from metropoints.campaigns.catalogue import live_campaigns
from metropoints.campaigns.images import prune_campaign_images
from metropoints.campaigns.models import Campaign
from metropoints.core.db import db

campaigns_cli = AppGroup("campaigns", help="Benefit campaigns and the live catalogue.")


@campaigns_cli.command("live")
@click.option("--station", default=None, help="Only campaigns valid near this station_id.")
def list_live(station: str | None) -> None:
    """Print the campaigns on sale now (id, merchant, title, price, stock left); the count on the last line."""
    rows = db.session.execute(live_campaigns(station_id=station).order_by(Campaign.id.desc())).all()
    for campaign, merchant in rows:
        click.echo(f"{campaign.id}\t{merchant.name}\t{campaign.title}\t{campaign.point_price}\t{campaign.stock_left}")
    click.echo(f"{len(rows)} live campaigns")


@campaigns_cli.command("prune-images")
def prune_images_command() -> None:
    """Delete uploaded images no campaign or revision names, older than a day (also scheduled daily)."""
    deleted = prune_campaign_images()
    for name in deleted:
        click.echo(name)
    click.echo(f"{len(deleted)} images deleted")


def register(app: Flask) -> None:
    """Add this package's commands to the app."""
    app.cli.add_command(campaigns_cli)
