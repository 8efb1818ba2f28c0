"""The live catalogue (GET /api/v1/catalog): only campaigns on sale now, the contract's item shape, filters and pages;
and featuring campaigns on station kiosks."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, select

from metropoints.campaigns import catalogue
from metropoints.campaigns.models import CampaignFeature, CampaignStatus
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import AuditEntry
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Category, MerchantStatus
from tests.campaigns import STATION_A, STATION_B, STATION_C, page_text


def listed(client, query: str = "") -> list[int]:
    """Campaign ids on the catalogue's first page."""
    reply = client.get(f"/api/v1/catalog{query}")
    assert reply.status_code == 200, reply.get_json()
    return [item["campaign_id"] for item in reply.get_json()["items"]]


def test_only_live_campaigns_are_listed(client, create_merchant, create_store, create_campaign):
    """Not live: before valid_from, from valid_until on, with stock_left 0, not approved (draft, submitted,
    paused, ended), or of a merchant that is not approved. No token is needed."""
    merchant, _ = create_merchant()
    store = create_store(merchant)
    now = utcnow()
    live = create_campaign(merchant, [store])
    hidden = [
        create_campaign(merchant, [store], valid_from=now + timedelta(hours=1), valid_until=now + timedelta(days=2)),
        create_campaign(merchant, [store], valid_from=now - timedelta(days=2), valid_until=now - timedelta(seconds=1)),
        create_campaign(merchant, [store], stock_total=5, stock_left=0),
        *(create_campaign(merchant, [store], status=s) for s in (CampaignStatus.draft, CampaignStatus.submitted,
                                                                 CampaignStatus.paused, CampaignStatus.ended,
                                                                 CampaignStatus.rejected)),
    ]
    assert listed(client) == [live.id]
    for campaign in hidden:
        reply = client.get(f"/api/v1/catalog/{campaign.id}")
        assert reply.status_code == 404 and reply.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/catalog/999999").status_code == 404


def test_suspended_merchants_campaigns_leave_at_once(client, create_merchant, create_store, create_campaign):
    """Suspending a merchant takes its campaigns off the catalogue with no change to the campaigns."""
    merchant, _ = create_merchant()
    other, _ = create_merchant()
    mine = create_campaign(merchant, [create_store(merchant)])
    theirs = create_campaign(other, [create_store(other)])
    assert set(listed(client)) == {mine.id, theirs.id}
    merchant.status = MerchantStatus.suspended
    commit_unit_of_work()
    assert listed(client) == [theirs.id]
    assert client.get(f"/api/v1/catalog/{mine.id}").status_code == 404


def test_item_has_the_contracts_fields(client, create_merchant, create_store, create_campaign):
    """An item is the contract's shape (times with offset, merchant and active stores only), plus benefit details."""
    merchant, _ = create_merchant(name="Noodle House")
    store = create_store(merchant, station_id=STATION_B, name="Station branch")
    create_store(merchant, name="Closed branch", active=False)
    closed = db.session.scalars(select(catalogue.Store).where(catalogue.Store.name == "Closed branch")).one()
    campaign = create_campaign(merchant, [store, closed], category=Category.dining, point_price=300,
                               per_rider_limit=3, stock_total=40, stock_left=12)
    item = client.get("/api/v1/catalog").get_json()["items"][0]
    assert item == client.get(f"/api/v1/catalog/{campaign.id}").get_json()
    assert {k: item[k] for k in ("campaign_id", "merchant", "title", "category", "point_price", "stock_left",
                                 "per_rider_limit")} == {
        "campaign_id": campaign.id, "merchant": {"merchant_id": merchant.id, "name": "Noodle House"},
        "title": campaign.title, "category": "dining", "point_price": 300, "stock_left": 12, "per_rider_limit": 3}
    assert item["stores"] == [{"store_id": store.id, "name": "Station branch", "address": store.address,
                               "station_id": STATION_B}]
    assert item["valid_from"].endswith("+08:00") and item["valid_until"].endswith("+08:00")
    assert (item["benefit_type"], item["face_value_fen"], item["image_url"]) == ("voucher", 2000, None)


def test_filters_by_category_and_station(client, create_merchant, create_store, create_campaign):
    """?category= keeps that category; ?station= keeps campaigns valid at an active store near that station."""
    merchant, _ = create_merchant()
    at_a, at_b = create_store(merchant, station_id=STATION_A), create_store(merchant, station_id=STATION_B)
    closed_c = create_store(merchant, station_id=STATION_C, active=False)
    dining_a = create_campaign(merchant, [at_a], category=Category.dining)
    leisure_b = create_campaign(merchant, [at_b], category=Category.leisure)
    both = create_campaign(merchant, [at_a, at_b, closed_c], category=Category.shopping)
    assert listed(client, "?category=leisure") == [leisure_b.id]
    assert listed(client, f"?station={STATION_A}") == [both.id, dining_a.id]
    assert listed(client, f"?station={STATION_B}&category=shopping") == [both.id]
    assert listed(client, f"?station={STATION_C}") == []


def test_bad_filters_are_422(client):
    """An unknown category or station, a bad limit or a forged cursor is a 422 `invalid` naming the parameter."""
    for query, field in (("?category=spa", "category"), ("?station=9999", "station"), ("?limit=0", "limit"),
                         ("?limit=101", "limit"), ("?cursor=bogus", "cursor")):
        reply = client.get(f"/api/v1/catalog{query}")
        assert reply.status_code == 422, query
        assert reply.get_json()["error"]["code"] == "invalid" and reply.get_json()["error"]["field"] == field


def test_pages_newest_first(client, create_merchant, create_store, create_campaign):
    """limit/cursor pages walk every live campaign once, newest (highest id) first."""
    merchant, _ = create_merchant()
    store = create_store(merchant)
    ids = [create_campaign(merchant, [store]).id for _ in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        reply = client.get("/api/v1/catalog?limit=2" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [item["campaign_id"] for item in reply["items"]]
        pages += 1
        cursor = reply["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True) and pages == 3


def test_stores_come_in_one_query(app, create_merchant, create_store, create_campaign):
    """catalog_items fetches the stores of a whole page in one query, not one per campaign."""
    merchant, _ = create_merchant()
    stores = [create_store(merchant) for _ in range(3)]
    for _ in range(6):
        create_campaign(merchant, stores)
    rows = [tuple(row) for row in db.session.execute(catalogue.live_campaigns())]
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        with app.test_request_context():
            items = catalogue.catalog_items(rows)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert len(items) == 6 and all(len(item["stores"]) == 3 for item in items)
    assert len(statements) == 1


def test_operator_features_a_campaign_at_stations(client, login, create_merchant, create_store, create_campaign,
                                                  create_operator):
    """An operator features an approved campaign at chosen stations (audited); the kiosk query returns it there
    only, while it is live; removing a station is audited too. Owners cannot reach the featuring page."""
    merchant, owner = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)], title="Kiosk special")
    draft = create_campaign(merchant, [create_store(merchant)], status=CampaignStatus.draft)
    operator = create_operator()
    login(owner)
    assert client.get(f"/portal/campaigns/{campaign.id}/features").status_code == 403
    login(operator)
    status, html = page_text(client, f"/portal/campaigns/{campaign.id}/features")
    assert status == 200 and "SHISANHAOJIE" in html
    reply = client.post(f"/portal/campaigns/{campaign.id}/features", data={"station_ids": [STATION_A, STATION_B]})
    assert reply.status_code == 302
    assert {f.station_id for f in db.session.scalars(select(CampaignFeature))} == {STATION_A, STATION_B}
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.feature"))
    assert entry.actor_id == operator.id and entry.subject == f"campaign:{campaign.id}" and STATION_B in entry.reason
    assert [c.id for c, _ in catalogue.featured_for_station(STATION_A)] == [campaign.id]
    assert catalogue.featured_for_station(STATION_C) == []
    assert client.post(f"/portal/campaigns/{campaign.id}/features/{STATION_A}/remove").status_code == 302
    assert catalogue.featured_for_station(STATION_A) == []
    assert db.session.scalar(select(AuditEntry.reason).where(AuditEntry.action == "campaign.unfeature")) \
        == f"station {STATION_A}"
    # A draft cannot be featured; an unknown station is refused.
    client.post(f"/portal/campaigns/{draft.id}/features", data={"station_ids": [STATION_A]})
    client.post(f"/portal/campaigns/{campaign.id}/features", data={"station_ids": ["9999"]})
    assert {(f.campaign_id, f.station_id) for f in db.session.scalars(select(CampaignFeature))} == {
        (campaign.id, STATION_B)}
    # A paused campaign stays featured but leaves the kiosk while paused.
    campaign.status = CampaignStatus.paused
    commit_unit_of_work()
    assert catalogue.featured_for_station(STATION_B) == []
