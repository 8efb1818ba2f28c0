"""Chinese throughout: every page of the app, found from its URL map, rendered in zh for a visitor, an operator, a
merchant owner and a cashier — GET, forms posted empty, a bad login, the error pages — shows no raw code, no ISO
timestamp, no English sentence and no msgid without a translation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pytest
from babel.messages.pofile import read_po
from babel.support import Translations
from flask import Flask, g, url_for
from flask_babel import refresh
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.extensions import limiter
from metropoints.core.models import ApiToken, AuditEntry, OutgoingMail, Role, TokenKind
from metropoints.core.timeutil import SERVICE_ZONE
from tests.core.test_catalogue import CATALOGUE
from tests.core.test_zh_scanner import problems, raw_codes, visible_text

PASSWORD = "password123"
ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
# Routes whose id arguments are not filled, and why. Any other route with an argument needs a filler below.
SKIPPED = {
    "static": "the stylesheet and scripts, not a page",
    "core.favicon": "the SVG icon",
    "core.favicon_ico": "the SVG icon",
    "campaigns.image": "an uploaded image file",
    "kiosk.qr": "an SVG image",
    "settlement.statement_csv": "a CSV download",
    "riders_api.*": "JSON for the apps, not a page",
    "kiosk_api.*": "JSON for the kiosks, not a page",
    "settlement_webhooks.*": "the payment provider's webhook",
}


def _green_modes(app: Flask, *, operator, rider, partner) -> None:
    """A bus line; a rider's day of metro rides back and forth (two held for review, one refused after it), a bus
    ride and a walking day, so the review queue, the bus lines and every mode's rule versions have rows."""
    from metropoints.accrual.buslines import set_bus_line
    from metropoints.accrual.operations import link_rider_ref, receive_trips
    from metropoints.accrual.review import decide_review, review_queue
    from metropoints.core.timeutil import utcnow
    from tests.accrual.test_modes import bus, walk
    from tests.helpers import noon_yesterday, trip

    set_bus_line(code="105", name="105路", avg_trip_m=4200, actor=operator)
    link_rider_ref(rider=rider, source="afc", ref="card-zh")
    start = noon_yesterday() - timedelta(hours=8)
    rows = [trip(f"zh{i}", ref="card-zh", exited_at=start + timedelta(hours=i), entry="0109" if i % 2 else "0114",
                 exit="0114" if i % 2 else "0109") for i in range(5)]
    rows += [bus("zh-bus", ref="card-zh", boarded_at=start + timedelta(hours=6), minutes=None),
             walk("zh-walk", ref="card-zh", source="afc", steps=9000)]
    app.config["REVIEW_FARMED_TRIPS"] = True
    try:
        receive_trips(partner=partner, payload={"trips": rows}, now=utcnow())
    finally:
        app.config["REVIEW_FARMED_TRIPS"] = False
    commit_unit_of_work()
    decide_review(trip_pk=review_queue()[-1].id, decision="refused", reason="同一张卡多人使用", actor=operator)
    commit_unit_of_work()


@dataclass
class World:
    """The rows the pages show: who logs in, and the ids each route's arguments are filled from."""

    users: dict[str, object] = field(default_factory=dict)  # role name -> user
    fillers: dict[str, list[dict]] = field(default_factory=dict)  # endpoint -> argument sets
    by_argument: dict[str, object] = field(default_factory=dict)  # argument name -> value, for any endpoint


def campaign_row(merchant, store, status, title: str, now: datetime, **fields):
    """A campaign of the merchant at the store, in a status."""
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignStore
    from metropoints.marketplace.models import Category

    values = {"title": title, "description": "地铁乘客专享", "category": Category.dining,
              "benefit_type": BenefitType.voucher, "face_value_fen": 2000, "point_price": 100, "stock_total": 50,
              "per_rider_limit": 5, "valid_from": now - timedelta(days=90), "valid_until": now + timedelta(days=60),
              "coupon_valid_days": 30, "terms": "每桌限用一张"}
    values.update(fields)
    values.setdefault("stock_left", values["stock_total"])
    campaign = Campaign(merchant_id=merchant.id, status=status, **values)
    db.session.add(campaign)
    db.session.flush()
    db.session.add(CampaignStore(campaign_id=campaign.id, store_id=store.id))
    return campaign


def build_world(app: Flask) -> World:
    """An approved merchant with a store, a cashier, an invitation; merchants in every status; campaigns in every
    status with a pending revision and a feature; coupons issued, used and cancelled; a statement of October 2026;
    a fee plan, a rule version, the other modes' seeded versions, a kiosk, a partner, a points adjustment; the audit
    entries all these write."""
    from metropoints.accrual.ledger import post_entry
    from metropoints.accrual.models import EntryKind, TripMode
    from metropoints.accrual.operations import create_partner
    from metropoints.accrual.rules import create_rule_version, ensure_default_rules
    from metropoints.campaigns import operations as lifecycle
    from metropoints.campaigns.models import CampaignRevision, CampaignStatus, RevisionStatus
    from metropoints.campaigns.queries import snapshot
    from metropoints.core.accounts import reset_token
    from metropoints.core.models import Rider
    from metropoints.core.operations import create_user
    from metropoints.kiosk.operations import create_kiosk
    from metropoints.marketplace import operations as market
    from metropoints.marketplace.models import Category, MerchantStatus
    from metropoints.redemption import operations as redemption
    from metropoints.settlement import operations as settlement
    from metropoints.settlement.models import Statement, StatementStatus

    world = World()
    operator = create_user(email="ops@metro.example", password=PASSWORD, role=Role.operator, display_name="王运营")
    merchants = []
    kinds = [("老边饺子馆", MerchantStatus.approved), ("中街咖啡", MerchantStatus.applied),
             ("北市书店", MerchantStatus.rejected), ("太原街花店", MerchantStatus.suspended)]
    for n, (name, status) in enumerate(kinds):
        merchant = market.apply_merchant(name=name, category=list(Category)[n % len(Category)], contact_name="李明",
                                         contact_phone=f"1380000{n:04d}", licence_no=f"91210100MA{n:08d}",
                                         email=f"owner{n}@shop.example", password=PASSWORD)
        first = {"approved": "approve", "rejected": "reject", "suspended": "approve"}.get(status.value)
        if first:
            market.decide_merchant(actor=operator, merchant=merchant, decision=first, reason="资料齐全")
        if status == MerchantStatus.suspended:
            market.decide_merchant(actor=operator, merchant=merchant, decision="suspend", reason="投诉较多")
        merchants.append(merchant)
    shop = merchants[0]
    owner = db.session.get(type(operator), shop.owner_id)
    owner.display_name = "李老板"
    store = market.create_store(actor=owner, merchant=shop, name="中街店", address="沈河区中街路一号",
                                station_id="0109", opening_hours="10:00-22:00")
    cashier = db.session.get(type(operator), market.create_cashier(
        email="cashier@shop.example", store_id=store.id, password=PASSWORD, actor_label="test").user_id)
    cashier.display_name = "张收银"
    _, invite = market.invite_cashier(actor=owner, merchant=shop, email="new@shop.example", store_id=store.id)

    now = datetime.now(SERVICE_ZONE)
    october = datetime(2026, 10, 5, 12, tzinfo=SERVICE_ZONE)
    campaigns = {status: campaign_row(shop, store, CampaignStatus.draft, f"饺子券{n}", now)
                 for n, status in enumerate(CampaignStatus)}
    for status, campaign in campaigns.items():  # each through its operations, so each move is audited
        if status != CampaignStatus.draft:
            lifecycle.submit_campaign(owner=owner, campaign=campaign)
        if status == CampaignStatus.rejected:
            lifecycle.reject_campaign(operator=operator, campaign=campaign, reason="图片不清晰")
        elif status in (CampaignStatus.approved, CampaignStatus.paused, CampaignStatus.ended):
            lifecycle.approve_campaign(operator=operator, campaign=campaign)
        if status == CampaignStatus.paused:
            lifecycle.pause_campaign(owner=owner, campaign=campaign)
        elif status == CampaignStatus.ended:
            lifecycle.end_campaign(owner=owner, campaign=campaign)
    on_sale = campaigns[CampaignStatus.approved]
    current = snapshot(on_sale)
    db.session.add(CampaignRevision(campaign_id=on_sale.id, status=RevisionStatus.pending, created_by=owner.id,
                                    previous_json=json.dumps(current),
                                    proposed_json=json.dumps({**current, "title": "新饺子券"})))
    lifecycle.feature_campaign(operator=operator, campaign=on_sale, station_ids=["0109"])
    rider = Rider(phone="13900000001", password_hash="!", display_name="乘客", points_balance=0)
    db.session.add(rider)
    db.session.flush()
    post_entry(rider_id=rider.id, points=5000, kind=EntryKind.adjustment, reason="测试", actor="test")
    commit_unit_of_work()
    codes = []
    for n in range(3):
        bought = redemption.redeem(rider_id=rider.id, campaign_id=on_sale.id, now=october + timedelta(hours=n))
        commit_unit_of_work()
        codes.append(bought)
    redemption.validate(cashier=cashier, code=codes[0].code, now=october + timedelta(hours=4))
    redemption.cancel(rider_id=rider.id, coupon_id=codes[1].coupon_id, now=october + timedelta(hours=4))
    commit_unit_of_work()
    settlement.run_period(date(2026, 10, 1), now=datetime(2026, 11, 2, 12, tzinfo=SERVICE_ZONE))
    commit_unit_of_work()
    statement = db.session.scalar(select(Statement).where(Statement.merchant_id == shop.id))
    statement.status, statement.payment_url = StatementStatus.issued, "https://pay.example/in_1"
    statement.issued_at, statement.due_at = datetime(2026, 11, 2, tzinfo=SERVICE_ZONE), now - timedelta(days=1)
    settlement.set_fee_plan(merchant_id=shop.id, fee_per_coupon_fen=300, monthly_fee_fen=0, actor=operator)
    create_rule_version(points_per_km="1.5", daily_cap=300, co2e_factor_g_per_km="40", factor_name="沈阳地铁 2026",
                        actor_label=operator.email, effective_from=now + timedelta(days=30), note="新规则")
    for mode in (TripMode.bus, TripMode.bike, TripMode.walk):  # the seeded versions, as /methodology shows them
        ensure_default_rules(mode)
    create_kiosk(station_id="0109", label="中街站", actor_label="test")
    feed, _ = create_partner(name="fare-system", actor_label="test")
    commit_unit_of_work()
    _green_modes(app, operator=operator, rider=rider, partner=feed)

    world.users = {"operator": operator, "merchant_owner": owner, "cashier": cashier}
    world.by_argument = {"merchant_id": shop.id, "store_id": store.id, "statement_id": statement.id,
                         "campaign_id": on_sale.id, "code": "zh"}
    world.fillers = {
        "campaigns.detail": [{"campaign_id": c.id} for c in campaigns.values()],
        "campaigns.edit": [{"campaign_id": c.id} for c in campaigns.values()],
        "campaigns.review_campaign": [{"campaign_id": campaigns[CampaignStatus.submitted].id}],
        "campaigns.review_revision": [{"revision_id": db.session.scalar(select(CampaignRevision.id))}],
        "marketplace.merchant": [{"merchant_id": m.id} for m in merchants],
        "marketplace.accept_invite": [{"token": invite}],
        "account.reset_password": [{"token": reset_token(owner)}, {"token": "not-a-token"}],
        "tokens.label": [{"token_id": db.session.scalar(select(ApiToken.id).where(ApiToken.kind == kind))}
                         for kind in (TokenKind.partner, TokenKind.kiosk)],
    }
    return world


@pytest.fixture
def world(app: Flask) -> World:
    """The rows of build_world, committed."""
    return build_world(app)


@pytest.fixture
def missing_translations(monkeypatch) -> Iterator[dict[str, str]]:
    """The msgids looked up in a loaded catalogue and not found there while pages render: msgid -> "ours" or
    "wtforms" (WTForms also looks up the labels it makes from field names, which no page may show)."""
    missing: dict[str, str] = {}
    original = Translations.ugettext

    def recording(self: Translations, message: str) -> str:
        """Look the message up and remember it when the catalogue has no translation."""
        if message and getattr(self, "_catalog", None) and message not in self._catalog:
            files = " ".join(getattr(self, "files", []))
            missing.setdefault(message, "wtforms" if "wtforms" in files else "ours")
        return original(self, message)

    monkeypatch.setattr(Translations, "ugettext", recording)
    yield missing


def skipped(endpoint: str) -> bool:
    """A route on the skip list (by endpoint or by blueprint)."""
    return endpoint in SKIPPED or endpoint.split(".")[0] + ".*" in SKIPPED


def page_urls(app: Flask, world: World) -> tuple[list[str], list[str], list[str]]:
    """(GET URLs, URLs that take a form, routes that could not be filled) from the app's URL map."""
    get, post, unfilled = [], [], []
    with app.test_request_context():
        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
            if skipped(rule.endpoint) or not rule.methods or "GET" not in rule.methods:
                continue
            sets = world.fillers.get(rule.endpoint)
            if sets is None:
                if not rule.arguments <= world.by_argument.keys():
                    unfilled.append(f"{rule.endpoint} ({rule.rule})")
                    continue
                sets = [{name: world.by_argument[name] for name in rule.arguments}]
            urls = [url_for(rule.endpoint, **values) for values in sets]
            get += urls
            takes_form = any(other.rule == rule.rule and "POST" in (other.methods or ())
                             for other in app.url_map.iter_rules())
            post += urls if takes_form else []
    return get, post, unfilled


def fresh(client) -> None:
    """Forget the last request's locale and user: the test's app context outlives requests."""
    refresh()
    g.pop("_login_user", None)


def log_out(client) -> None:
    """Log the client out, and drop what that flashed (a visitor is asked to log in first)."""
    limiter.reset()
    fresh(client)
    client.post("/logout")
    with client.session_transaction() as session:
        session.pop("_flashes", None)
    fresh(client)


def log_in(client, user) -> None:
    """Log the client in as a portal user (the login limits reset, so many logins in one test pass)."""
    log_out(client)
    reply = client.post("/login", data={"email": user.email, "password": PASSWORD}, headers=ZH)
    assert reply.status_code == 302, reply.get_data(as_text=True)


def html_of(reply) -> str:
    """A reply's HTML, or "" for anything else (a CSV, JSON, an image, a redirect nobody reads)."""
    if reply.mimetype != "text/html" or 300 <= reply.status_code < 400:
        return ""
    return reply.get_data(as_text=True)


def untranslated_msgids() -> frozenset[str]:
    """The catalogue's msgids whose Chinese differs from them: shown as they are, they were not translated."""
    with CATALOGUE.open("rb") as po:
        catalog = read_po(po)
    return frozenset(m.id for m in catalog if isinstance(m.id, str) and m.id and m.string and m.string != m.id)


def written_codes() -> set[str]:
    """The audit actions and mail kinds the world wrote (merchant.approve, statement.issued...): codes, never text."""
    return (set(db.session.scalars(select(AuditEntry.action).distinct()))
            | set(db.session.scalars(select(OutgoingMail.kind).distinct())))


def crawl(app: Flask, client, world: World, shown: list[str]) -> dict[str, list[str]]:
    """Every page in zh for a visitor and each role, and each form posted empty; page label -> what was found.
    Each page's visible text is added to `shown`."""
    codes = raw_codes(written_codes())
    untranslated = untranslated_msgids()
    get, post, unfilled = page_urls(app, world)
    assert not unfilled, ("routes with arguments this test cannot fill: add a filler to build_world (World.fillers "
                          "or World.by_argument) or, for a download or an image, an entry with its reason in SKIPPED: "
                          + ", ".join(unfilled))
    assert len(get) > 40 and len(post) > 10, (get, post)  # the enumeration found the pages
    found: dict[str, list[str]] = {}

    def check(label: str, reply, error_page: bool = False) -> None:
        """Scan one reply (a page, or an error page made on purpose)."""
        assert error_page or reply.status_code < 500, (label, reply.status_code)
        html = html_of(reply)
        shown.extend(visible_text(html)[0])
        items = problems(html, codes, untranslated)
        if items:
            found[label] = items

    for role in ("visitor", "operator", "merchant_owner", "cashier"):
        if role == "visitor":
            log_out(client)
        else:
            log_in(client, world.users[role])
        for method, urls in (("GET", get), ("POST", post)):
            for url in urls:
                fresh(client)
                label = f"{role} {method} {url}" + (" (empty form)" if method == "POST" else "")
                try:
                    reply = client.open(url, method=method, data={}, headers=ZH, follow_redirects=True)
                except Exception as error:  # a broken page is reported with the others, not alone
                    db.session.rollback()
                    found[label] = [f"raised {error!r}"]
                    continue
                check(label, reply)
    log_out(client)
    check("bad password", client.post("/login", data={"email": "ops@metro.example", "password": "wrong-one"},
                                      headers=ZH))
    fresh(client)
    check("malformed e-mail", client.post("/login", data={"email": "not-an-address", "password": "x"}, headers=ZH))
    for _ in range(12):
        fresh(client)
        reply = client.post("/login", data={"email": "ops@metro.example", "password": "wrong-one"}, headers=ZH)
    assert reply.status_code == 429
    check("429 after too many logins", reply)
    limiter.reset()
    fresh(client)
    check("404 GET /no-such-page", client.get("/no-such-page", headers=ZH))
    check("404 GET an id that cannot exist", client.get("/portal/campaigns/99999999999", headers=ZH))
    for code in (400, 403, 404, 405, 410, 413, 429, 500):
        with app.test_request_context("/portal", headers=ZH):
            refresh()
            error = HTTPException()
            error.code = code
            check(f"error page {code}", app.make_response(app.handle_http_exception(error)), error_page=True)
    return found


def test_every_page_is_chinese_for_every_role(app, client, world, missing_translations):
    """No page in the zh UI shows a raw code (an enum value, an audit action), an ISO timestamp, an English
    sentence, or a message without a Chinese translation (ours, Flask-Login's, WTForms'), for any role."""
    shown: list[str] = []
    found = crawl(app, client, world, shown)
    pages_of: dict[str, list[str]] = {}
    for page, items in found.items():
        for item in items:
            pages_of.setdefault(item, []).append(page)
    report = [f"{item}\n    on {len(pages)} page(s): {', '.join(sorted(pages)[:3])}"
              for item, pages in sorted(pages_of.items())]
    everything = "\n".join(shown)
    missing = sorted(msgid for msgid, domain in missing_translations.items()
                     if domain == "ours" or msgid in everything)
    assert not report and not missing, ("\n".join(report) + "\nmsgids without a zh translation: "
                                        + "; ".join(map(repr, missing)))
