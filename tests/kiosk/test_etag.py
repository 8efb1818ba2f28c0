"""The kiosk feed's ETag changes when what a kiosk shows changes (catalogue, featuring, city figures), and only
then; If-None-Match with the current ETag gets a 304 and no body."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from metropoints.campaigns.models import CampaignStatus
from metropoints.core.db import commit_unit_of_work
from metropoints.core.timeutil import utcnow
from metropoints.kiosk.feed import feed_etag, kiosk_feed
from tests.conftest import auth
from tests.helpers import trip
from tests.kiosk import OTHER_STATION


@pytest.fixture
def kiosk_world(create_kiosk, create_merchant, create_store, create_campaign):
    """A kiosk with its token, a merchant (and owner), a store and one live campaign."""
    kiosk, token = create_kiosk()
    merchant, owner = create_merchant()
    store = create_store(merchant)
    campaign = create_campaign(merchant, [store])
    return {"kiosk": kiosk, "token": token, "merchant": merchant, "owner": owner, "store": store,
            "campaign": campaign}


def etag_of(read_feed, token: str) -> str:
    """The ETag of a full (200) read of the feed."""
    reply = read_feed(token)
    assert reply.status_code == 200, reply.get_json()
    return reply.headers["ETag"]


def test_same_content_same_etag_and_304(read_feed, kiosk_world):
    """Reading twice gives the same ETag although generated_at moved on; If-None-Match with it gets a 304 with
    the ETag and no body; a stale or foreign tag gets the full feed. Kiosks must revalidate: no-cache."""
    token = kiosk_world["token"]
    first = read_feed(token)
    time.sleep(0.01)
    second = read_feed(token)
    assert first.get_json()["generated_at"] != second.get_json()["generated_at"]
    etag = first.headers["ETag"]
    assert etag == second.headers["ETag"] and etag.startswith('W/"')
    assert "no-cache" in first.headers["Cache-Control"] and "private" in first.headers["Cache-Control"]
    unchanged = read_feed(token, etag)
    assert unchanged.status_code == 304 and unchanged.data == b""
    assert unchanged.headers["ETag"] == etag and "no-cache" in unchanged.headers["Cache-Control"]
    assert read_feed(token, etag.removeprefix("W/")).status_code == 304  # a strong copy of the same tag
    assert read_feed(token, f'"other", {etag}').status_code == 304
    assert read_feed(token, '"0123"').status_code == 200


def test_etag_ignores_generated_at(app, kiosk_world):
    """The same content an hour apart (the catalogue unchanged in between) has the same ETag."""
    with app.test_request_context():
        now = utcnow()
        early = kiosk_feed(kiosk_world["kiosk"], now=now)
        later = kiosk_feed(kiosk_world["kiosk"], now=now + timedelta(hours=1))
    assert early["generated_at"] != later["generated_at"]
    assert feed_etag(early) == feed_etag(later)


def test_changes_when_a_campaign_goes_live_or_ends(read_feed, kiosk_world, create_campaign, create_operator):
    """Approving a submitted campaign (it goes live) changes the ETag; ending a live one changes it again."""
    from metropoints.campaigns.operations import approve_campaign, end_campaign

    token, merchant, store = kiosk_world["token"], kiosk_world["merchant"], kiosk_world["store"]
    submitted = create_campaign(merchant, [store], status=CampaignStatus.submitted)
    before = etag_of(read_feed, token)
    approve_campaign(operator=create_operator(), campaign=submitted)
    commit_unit_of_work()
    live = etag_of(read_feed, token)
    assert live != before
    assert read_feed(token, before).status_code == 200
    end_campaign(owner=kiosk_world["owner"], campaign=kiosk_world["campaign"])
    commit_unit_of_work()
    ended = etag_of(read_feed, token)
    assert ended not in (before, live)


def test_changes_when_a_sale_window_closes(app, kiosk_world, create_campaign):
    """A campaign whose sale window ends leaves the feed with no write at all: the ETag follows the clock there."""
    now = utcnow()
    create_campaign(kiosk_world["merchant"], [kiosk_world["store"]], valid_until=now + timedelta(hours=1))
    with app.test_request_context():
        assert feed_etag(kiosk_feed(kiosk_world["kiosk"], now=now)) != \
            feed_etag(kiosk_feed(kiosk_world["kiosk"], now=now + timedelta(hours=2)))


def test_changes_when_stock_changes(read_feed, kiosk_world):
    """A coupon sold (stock_left down by one) changes the ETag: kiosks show the stock left."""
    token, campaign = kiosk_world["token"], kiosk_world["campaign"]
    before = etag_of(read_feed, token)
    campaign.stock_left -= 1
    commit_unit_of_work()
    assert etag_of(read_feed, token) != before


def test_changes_when_featured_at_this_station(read_feed, kiosk_world, feature):
    """Featuring a campaign at the kiosk's station changes the ETag."""
    token = kiosk_world["token"]
    before = etag_of(read_feed, token)
    feature(kiosk_world["campaign"])
    assert etag_of(read_feed, token) != before


def test_changes_when_city_figures_change(read_feed, kiosk_world, create_rider, create_partner, client):
    """A new rider, and a credited trip, change the ETag (the city counter)."""
    token = kiosk_world["token"]
    before = etag_of(read_feed, token)
    create_rider(links=[("afc", "card-1")])
    registered = etag_of(read_feed, token)
    assert registered != before
    _, partner_token = create_partner()
    assert client.post("/api/v1/trips", json={"trips": [trip("t1")]},
                       headers=auth(partner_token)).get_json()["credited"] == 1
    assert etag_of(read_feed, token) not in (before, registered)


def test_unchanged_by_what_the_kiosk_does_not_show(read_feed, kiosk_world, create_campaign, feature,
                                                   create_kiosk):
    """Featuring at another station, editing a draft, a paused campaign's stock, a scheduled campaign, another
    kiosk being set up, or a trip held for an unlinked reference leave the ETag as it was."""
    token, merchant, store = kiosk_world["token"], kiosk_world["merchant"], kiosk_world["store"]
    draft = create_campaign(merchant, [store], status=CampaignStatus.draft)
    paused = create_campaign(merchant, [store], status=CampaignStatus.paused)
    before = etag_of(read_feed, token)
    feature(kiosk_world["campaign"], OTHER_STATION)
    draft.title = "Edited draft"
    draft.stock_left = draft.stock_total - 1
    paused.stock_left -= 1
    now = utcnow()
    create_campaign(merchant, [store], valid_from=now + timedelta(days=1), valid_until=now + timedelta(days=2))
    create_kiosk(OTHER_STATION)
    commit_unit_of_work()
    assert etag_of(read_feed, token) == before
    assert read_feed(token, before).status_code == 304
