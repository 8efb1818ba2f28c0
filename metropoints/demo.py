"""`flask demo load`: demo riders, a partner and a fortnight of trips on the real network, for a first look."""

from __future__ import annotations

import random
from datetime import timedelta

import click
from flask import Flask
from sqlalchemy import select

from metropoints.accrual import operations as accrual
from metropoints.accrual.cli import sync_stations
from metropoints.accrual.models import Partner
from metropoints.accrual.network import get_network
from metropoints.accrual.rules import ensure_default_rules
from metropoints.core import operations as core
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider, Role, TokenKind, User
from metropoints.core.timeutil import service_day, utcnow

DEMO_PASSWORD = "demo-password"
DEMO_OPERATOR = "operator@demo.metro"
DEMO_RIDERS = [("13800000001", "小林"), ("13800000002", "Wang Fang"), ("13800000003", "陈晨")]


def load_demo(seed: int = 7) -> dict:
    """Create the demo data once; a second run adds nothing. Returns what a person needs to log in."""
    sync_stations()
    ensure_default_rules()
    created = db.session.scalar(select(Partner).where(Partner.name == "demo-afc")) is None
    partner_token = None
    if created:
        partner, partner_token = accrual.create_partner(name="demo-afc", actor_label="demo")
        if db.session.scalar(select(User.id).where(User.email == DEMO_OPERATOR)) is None:
            core.create_user(email=DEMO_OPERATOR, password=DEMO_PASSWORD, role=Role.operator,
                             display_name="Metro business team")
        riders = [core.register_rider(phone=phone, password=DEMO_PASSWORD, display_name=name)
                  for phone, name in DEMO_RIDERS]
        for rider in riders[:2]:
            accrual.link_rider_ref(rider=rider, source="afc", ref=f"card-{rider.phone[-4:]}")
        accrual.receive_trips(partner=partner, payload={"trips": demo_trips(seed)})
    rider = db.session.scalar(select(Rider).where(Rider.phone == DEMO_RIDERS[0][0]))
    rider_token, _ = core.issue_token(kind=TokenKind.rider, subject_id=rider.id, ttl=timedelta(days=30), label="demo")
    return {"created": created, "partner_token": partner_token, "rider_token": rider_token}


def demo_trips(seed: int) -> list[dict]:
    """A fortnight of commutes for the three demo cards (the third one not linked yet, so its trips are held)."""
    rng = random.Random(seed)
    network = get_network()
    now = utcnow()
    stations = sorted(s for s in network.stations if network.is_open(s, service_day(now - timedelta(days=14))))
    trips = []
    for day in range(14, 0, -1):
        for phone, _ in DEMO_RIDERS:
            home, work = rng.sample(stations, 2)
            for leg, (a, b) in enumerate(((home, work), (work, home))):
                start = now - timedelta(days=day, hours=10 - 9 * leg, minutes=rng.randint(0, 50))
                metres = network.distance_m(a, b, service_day(start)) or 0
                trips.append({"trip_id": f"demo-{phone[-4:]}-{day}-{leg}", "source": "afc",
                              "rider_ref": f"card-{phone[-4:]}", "entry_station": a, "exit_station": b,
                              "entered_at": start.isoformat(),
                              "exited_at": (start + timedelta(minutes=8 + metres // 500)).isoformat()})
    return trips


@click.group("demo")
def demo_cli() -> None:
    """Demo data for a first look."""


@demo_cli.command("load")
def load() -> None:
    """Load demo riders, a partner and trips; prints where to log in."""
    info = load_demo()
    commit_unit_of_work()
    if info["partner_token"]:
        click.echo(f"partner demo-afc token: {info['partner_token']}")
    click.echo(f"rider token for {DEMO_RIDERS[0][0]}: {info['rider_token']}")
    click.echo(f"portal: http://127.0.0.1:5000/login as {DEMO_OPERATOR} / {DEMO_PASSWORD}; "
               f"riders {', '.join(p for p, _ in DEMO_RIDERS)} / {DEMO_PASSWORD}")


def register(app: Flask) -> None:
    """Add `flask demo`."""
    app.cli.add_command(demo_cli)
