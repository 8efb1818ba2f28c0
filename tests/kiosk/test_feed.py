"""GET /api/v1/kiosk/feed: the contract's shape, the kiosk's own station and features, kiosk tokens only."""

from __future__ import annotations

from datetime import datetime, timedelta

from metropoints.accrual.operations import link_rider_ref
from metropoints.campaigns.models import CampaignStatus
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import ApiToken, Station
from metropoints.core.operations import hash_token
from metropoints.core.timeutil import utcnow
from tests.conftest import auth
from tests.helpers import trip
from tests.kiosk import KIOSK_STATION, OTHER_STATION, STORE_STATION
from tests.modes import credit_trip


def test_feed_has_the_contracts_shape(client, read_feed, create_kiosk, create_merchant, create_store,
                                      create_campaign, feature):
    """{station, generated_at, featured, catalog, city} in that order; generated_at ISO 8601 with offset;
    featured and catalog items are the catalogue's items, exactly as GET /api/v1/catalog/<id> shows them."""
    _, token = create_kiosk()
    merchant, _ = create_merchant(name="Noodle House")
    store = create_store(merchant, station_id=STORE_STATION)
    older = create_campaign(merchant, [store])
    newer = create_campaign(merchant, [store])
    feature(older)
    reply = read_feed(token)
    assert reply.status_code == 200 and reply.mimetype == "application/json"
    body = reply.get_json()
    assert list(body) == ["station", "generated_at", "featured", "catalog", "city"]
    station = db.session.get(Station, KIOSK_STATION)
    assert body["station"] == {"station_id": KIOSK_STATION, "name_zh": station.name_zh, "name_en": station.name_en}
    generated = datetime.fromisoformat(body["generated_at"])
    assert generated.utcoffset() == timedelta(hours=8) and abs(generated - utcnow()) < timedelta(minutes=1)
    catalogue_item = {c.id: client.get(f"/api/v1/catalog/{c.id}").get_json() for c in (older, newer)}
    assert body["featured"] == [catalogue_item[older.id]]
    assert body["catalog"] == [catalogue_item[newer.id], catalogue_item[older.id]]  # newest first
    nothing = {"trips": 0, "km": 0.0, "co2e_tonnes": 0.0, "points": 0}
    assert body["city"] == {"riders_total": 0, "co2e_tonnes_total": 0.0, "points_total": 0,
                            "by_mode": {"metro": nothing, "bus": nothing, "bike": nothing, "walk": nothing}}


def test_featured_are_this_stations_live_features_only(read_feed, create_kiosk, create_merchant, create_store,
                                                       create_campaign, feature):
    """A kiosk shows the live campaigns featured at its own station, most recently featured first; not those
    featured elsewhere, nor featured ones that are not live."""
    _, token = create_kiosk(KIOSK_STATION)
    _, other_token = create_kiosk(OTHER_STATION)
    merchant, _ = create_merchant()
    store = create_store(merchant)
    first, second, elsewhere = (create_campaign(merchant, [store]) for _ in range(3))
    sold_out = create_campaign(merchant, [store], stock_total=5, stock_left=1)
    feature(first)
    feature(second)
    feature(sold_out)
    feature(elsewhere, OTHER_STATION)
    sold_out.stock_left = 0
    commit_unit_of_work()
    body = read_feed(token).get_json()
    assert [item["campaign_id"] for item in body["featured"]] == [second.id, first.id]
    assert [item["campaign_id"] for item in body["catalog"]] == [elsewhere.id, second.id, first.id]
    assert [item["campaign_id"] for item in read_feed(other_token).get_json()["featured"]] == [elsewhere.id]


def test_catalog_holds_live_campaigns_only_and_is_capped(read_feed, create_kiosk, create_merchant, create_store,
                                                         create_campaign, monkeypatch):
    """The catalogue is the live catalogue (no draft, paused, scheduled or expired campaign), newest first, at
    most CATALOG_LIMIT items."""
    from metropoints.kiosk import feed

    monkeypatch.setattr(feed, "CATALOG_LIMIT", 2)
    _, token = create_kiosk()
    merchant, _ = create_merchant()
    store = create_store(merchant)
    now = utcnow()
    live = [create_campaign(merchant, [store]) for _ in range(3)]
    create_campaign(merchant, [store], status=CampaignStatus.draft)
    create_campaign(merchant, [store], status=CampaignStatus.paused)
    create_campaign(merchant, [store], valid_from=now + timedelta(hours=1), valid_until=now + timedelta(days=1))
    assert [item["campaign_id"] for item in read_feed(token).get_json()["catalog"]] == [live[2].id, live[1].id]


def test_city_figures(read_feed, create_kiosk, create_rider, create_partner, client):
    """riders_total counts registered riders (the back office's KPI); co2e_tonnes_total and points_total sum the
    credited trips (tonnes with 1 decimal)."""
    _, token = create_kiosk()
    rider = create_rider()
    create_rider()
    link_rider_ref(rider=rider, source="afc", ref="card-1")
    commit_unit_of_work()
    _, partner_token = create_partner()
    sent = client.post("/api/v1/trips", json={"trips": [trip("t1"), trip("t2", exited_at=utcnow())]},
                       headers=auth(partner_token))
    assert sent.get_json()["credited"] == 2
    city = read_feed(token).get_json()["city"]
    # Two trips of 6.065 km: 6 points each, 267 g CO2e each (44 g/km).
    nothing = {"trips": 0, "km": 0.0, "co2e_tonnes": 0.0, "points": 0}
    assert city == {"riders_total": 2, "co2e_tonnes_total": round(2 * 267 / 1_000_000, 1), "points_total": 12,
                    "by_mode": {"metro": {"trips": 2, "km": 12.13, "co2e_tonnes": 0.0, "points": 12}, "bus": nothing,
                                "bike": nothing, "walk": nothing}}


def test_city_figures_split_by_mode(read_feed, create_kiosk, create_rider):
    """The city's figures per mode come from the rollup by mode; the totals are the modes' sums, in tonnes with 1
    decimal (a tonne of bus CO2e is 33,334 km at 30 g/km)."""
    _, token = create_kiosk()
    rider = create_rider()
    for n in range(4):
        credit_trip(rider_id=rider.id, mode="bus", metres=10_000_000, exited_at=utcnow() - timedelta(hours=n + 1))
    credit_trip(rider_id=rider.id, mode="bike", metres=2500)
    credit_trip(rider_id=rider.id, mode="walk", steps=8000)
    credit_trip(rider_id=rider.id, mode="metro", metres=6065)
    commit_unit_of_work()
    city = read_feed(token).get_json()["city"]
    assert city["by_mode"] == {"metro": {"trips": 1, "km": 6.065, "co2e_tonnes": 0.0, "points": 6},
                               "bus": {"trips": 4, "km": 40_000.0, "co2e_tonnes": 1.2, "points": 40_000},
                               "bike": {"trips": 1, "km": 2.5, "co2e_tonnes": 0.0, "points": 2},
                               "walk": {"trips": 1, "km": 5.6, "co2e_tonnes": 0.0, "points": 5}}
    assert city["points_total"] == 40_013
    assert city["co2e_tonnes_total"] == round((4 * 300_000 + 267 + 188 + 420) / 1_000_000, 1)


def test_only_kiosk_tokens(client, read_feed, create_kiosk, create_rider, rider_token, create_partner):
    """No token: 401 `unauthorized`; an unknown or revoked token: 401 `invalid_token`; a rider's or partner's
    token: 403 `forbidden`. Errors are the contract's JSON."""
    reply = client.get("/api/v1/kiosk/feed")
    assert reply.status_code == 401 and reply.get_json()["error"]["code"] == "unauthorized"
    assert read_feed("ki_not-a-token").get_json()["error"]["code"] == "invalid_token"
    for token in (rider_token(create_rider()), create_partner()[1]):
        reply = read_feed(token)
        assert reply.status_code == 403 and reply.get_json()["error"]["code"] == "forbidden"
    _, token = create_kiosk()
    assert read_feed(token).status_code == 200
    db.session.scalars(db.select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one().revoked_at = utcnow()
    commit_unit_of_work()
    reply = read_feed(token)
    assert reply.status_code == 401 and reply.get_json()["error"]["code"] == "invalid_token"
