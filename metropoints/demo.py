"""`flask demo load`: demo merchants with stores and live campaigns, riders, a partner and a fortnight of trips on
the real network, for a first look."""

from __future__ import annotations

import random
from datetime import timedelta

import click
from flask import Flask
from sqlalchemy import select

from metropoints.accrual import operations as accrual
from metropoints.accrual.ledger import adjust_points
from metropoints.accrual.models import Partner
from metropoints.accrual.network import get_network, sync_stations
from metropoints.accrual.rules import ensure_default_rules
from metropoints.campaigns import operations as campaigns
from metropoints.campaigns.models import Campaign
from metropoints.core import operations as core
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider, Role, TokenKind, User
from metropoints.core.timeutil import service_day, utcnow
from metropoints.kiosk.models import Kiosk
from metropoints.kiosk.operations import create_kiosk
from metropoints.marketplace import operations as marketplace
from metropoints.marketplace.models import Merchant, Store
from metropoints.redemption import operations as redemption
from metropoints.settlement import operations as settlement
from metropoints.settlement import periods

DEMO_PASSWORD = "demo-password"
DEMO_OPERATOR = "operator@demo.metro"
DEMO_KIOSK_LABEL = "demo: 中街"
DEMO_RIDERS = [("13800000001", "小林"), ("13800000002", "Wang Fang"), ("13800000003", "陈晨")]
# (merchant, category, licence, owner e-mail, store, address, station, campaigns: (title, benefit, value, price, stock))
DEMO_MERCHANTS = [
    ("老边饺子馆", "dining", "91210100MA0DEMO001", "owner@laobian.demo", "中街店", "沈河区中街路 208 号", "0119",
     [("满 50 减 20 饺子券", "voucher", 2000, 200, 100), ("招牌三鲜饺子一份", "free_item", None, 150, 40)]),
    ("盛京书店", "shopping", "91210100MA0DEMO002", "owner@shengjing.demo", "青年大街店", "和平区青年大街 1 号",
     "0117", [("全场图书 8 折", "discount", 20, 120, 200)]),
    ("北陵公园游船", "leisure", "91210100MA0DEMO003", "owner@beiling.demo", "北陵码头", "皇姑区泰山路 12 号",
     "0208", [("游船 30 元代金券", "voucher", 3000, 300, 60)]),
]


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
        load_demo_merchants()
        demo_last_month(riders)
    rider = db.session.scalar(select(Rider).where(Rider.phone == DEMO_RIDERS[0][0]))
    rider_token, _ = core.issue_token(kind=TokenKind.rider, subject_id=rider.id, ttl=timedelta(days=30), label="demo")
    kiosk = db.session.scalar(select(Kiosk).where(Kiosk.label == DEMO_KIOSK_LABEL))
    if kiosk is None:
        _, kiosk_token = create_kiosk(station_id="0119", label=DEMO_KIOSK_LABEL, actor_label="demo")
    else:  # a token is shown once: the demo kiosk gets a new one each run
        kiosk_token, _ = core.issue_token(kind=TokenKind.kiosk, subject_id=kiosk.id, label="kiosk 0119")
    return {"created": created, "partner_token": partner_token, "rider_token": rider_token,
            "kiosk_token": kiosk_token}


def load_demo_merchants() -> None:
    """Approved merchants, each with a store and live campaigns, created through the same rules as the portal."""
    operator = db.session.scalar(select(User).where(User.email == DEMO_OPERATOR))
    now = utcnow()
    for name, category, licence, email, store_name, address, station, offers in DEMO_MERCHANTS:
        merchant = marketplace.apply_merchant(name=name, category=category, contact_name="店长",
                                              contact_phone="024-22223333", licence_no=licence, email=email,
                                              password=DEMO_PASSWORD)
        marketplace.decide_merchant(actor=operator, merchant=merchant, decision="approve", reason="demo data")
        owner = db.session.get(User, merchant.owner_id)
        store = marketplace.create_store(actor=owner, merchant=merchant, name=store_name, address=address,
                                         station_id=station, opening_hours="10:00-21:00")
        for title, benefit, value, price, stock in offers:
            campaign = campaigns.create_campaign(owner=owner, data={
                "title": title, "category": category, "benefit_type": benefit, "point_price": price,
                "face_value_fen": value if benefit == "voucher" else None,
                "discount_percent": value if benefit == "discount" else None,
                "stock_total": stock, "per_rider_limit": 2, "valid_from": now - timedelta(days=1),
                "valid_until": now + timedelta(days=60), "coupon_valid_days": 14, "store_ids": [store.id],
                "description": f"{name} · {store_name}", "terms": "每单限用一张，不找零。"})
            campaigns.submit_campaign(owner=owner, campaign=campaign)
            campaigns.approve_campaign(operator=operator, campaign=campaign, reason="demo data")
        if station == "0119":
            campaigns.feature_campaign(operator=operator, campaign=campaign, station_ids=[station, "0117"])


def demo_last_month(riders: list[Rider]) -> None:
    """Coupons of the first demo merchant bought and used at its counter last month, a fee plan for the second
    merchant from next month, and last month's statements (invoiced at once when the payment provider runs)."""
    last_month = periods.period_start(periods.previous_period())
    first, second = (db.session.scalar(select(Merchant).where(Merchant.licence_no == m[2])) for m in DEMO_MERCHANTS[:2])
    campaign = db.session.scalar(select(Campaign).where(Campaign.merchant_id == first.id).order_by(Campaign.id))
    campaign.valid_from = last_month  # demo data: this campaign has been on sale since last month
    store = db.session.scalar(select(Store).where(Store.merchant_id == first.id))
    owner = db.session.get(User, first.owner_id)
    for n, rider in enumerate(riders * 2):
        adjust_points(rider_id=rider.id, points=campaign.point_price, reason="demo credit", actor="demo")
        moment = last_month + timedelta(days=3 + 4 * n, hours=4)
        bought = redemption.redeem(rider_id=rider.id, campaign_id=campaign.id, now=moment)
        redemption.validate(cashier=owner, code=bought.code, store_id=store.id, now=moment + timedelta(hours=2))
    settlement.set_fee_plan(merchant_id=second.id, fee_per_coupon_fen=150, monthly_fee_fen=5000, actor=None,
                            actor_label="demo")
    settlement.run_period(periods.previous_period())


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
    click.echo(f"kiosk at 中街 (0119): http://127.0.0.1:5000/kiosk#token={info['kiosk_token']}")
    click.echo(f"merchant owners {', '.join(m[3] for m in DEMO_MERCHANTS)} / {DEMO_PASSWORD}")
    click.echo(f"portal: http://127.0.0.1:5000/login as {DEMO_OPERATOR} / {DEMO_PASSWORD}; "
               f"riders {', '.join(p for p, _ in DEMO_RIDERS)} / {DEMO_PASSWORD}")


def register(app: Flask) -> None:
    """Add `flask demo`."""
    app.cli.add_command(demo_cli)
