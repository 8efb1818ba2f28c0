"""Sold-out marks (campaigns.soldout): set only after the database found no stock, answered without the database,
cleared by the unit of work that gives stock back once it commits; with Redis gone, the database answers everything
and nothing is oversold."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections import Counter

import pytest
from redis import Redis, RedisError

from metropoints.campaigns import soldout
from metropoints.campaigns.models import Campaign
from metropoints.campaigns.operations import raise_stock
from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work
from metropoints.redemption.models import Coupon
from tests.conftest import auth
from tests.helpers import run_at_once
from tests.redemption.test_concurrency import outcome, post_redemption
from tests.redemption.test_round_trips import statements


def redeem(client, token: str, campaign_id: int):
    """POST /api/v1/redemptions."""
    return client.post("/api/v1/redemptions", json={"campaign_id": campaign_id}, headers=auth(token))


def in_redis(campaign_id: int) -> bool:
    """Whether Redis holds the campaign's mark."""
    marks = soldout.marks()
    return marks.redis.exists(f"{marks.prefix}:soldout:{campaign_id}") == 1


@pytest.fixture
def sold_out(redis_app, client, create_shop, create_campaign, create_riders, token_for):
    """A campaign of stock 1 whose one coupon a first rider bought, and a second rider's token: (shop, campaign id,
    the first rider's token and reply, the second rider's token). The marks' Redis keys are removed afterwards."""
    shop = create_shop()
    campaign_id = create_campaign(shop, stock_total=1, per_rider_limit=1).id
    first, late = (token_for(rider) for rider in create_riders(2))
    bought = redeem(client, first, campaign_id)
    assert bought.status_code == 201
    yield shop, campaign_id, first, bought.get_json(), late
    soldout.marks().clear({campaign_id})


def test_the_last_sale_marks_the_campaign_and_later_attempts_skip_the_database(sold_out, client, books):
    """The sale that took the last unit marks the campaign once it committed (here and in Redis); a later attempt is
    out_of_stock without a statement about the campaign, and with its token cached, without any statement."""
    _, campaign_id, _, _, late = sold_out
    assert soldout.marks().is_marked_here(campaign_id) and in_redis(campaign_id)
    with statements() as sent:
        reply = redeem(client, late, campaign_id)
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (409, "out_of_stock")
    assert not any("campaigns" in statement or "riders" in statement for statement in sent), sent
    with statements() as sent:
        assert redeem(client, late, campaign_id).status_code == 409
    assert sent == []
    books()


def test_a_sold_out_campaign_is_answered_before_the_token(sold_out, redis_app, client, create_campaign,
                                                          token_for, books):
    """A marked campaign is out_of_stock for a request with any bearer token, before the token is looked up (no
    statement at all), the fast path and Flask alike: what the public catalogue shows anyone. Every other refusal
    keeps its order: no bearer token is a 401; a body that does not parse, or a campaign with stock, leaves the
    token to be checked first (401 for an unknown one)."""
    from tests.redemption.test_fast_path import REDEEM, same_both_ways

    shop, campaign_id, _, _, _ = sold_out
    on_sale = create_campaign(shop)
    cases = [
        (409, "out_of_stock", {"json": {"campaign_id": campaign_id}, "headers": auth("not-a-token")}),
        (409, "out_of_stock", {"json": {"campaign_id": campaign_id}, "headers": auth(token_for(shop.cashier))}),
        (401, "unauthorized", {"json": {"campaign_id": campaign_id}}),
        (401, "unauthorized", {"json": {"campaign_id": campaign_id}, "headers": {"Authorization": "Basic abc"}}),
        (401, "invalid_token", {"data": b"{", "content_type": "application/json", "headers": auth("not-a-token")}),
        (401, "invalid_token", {"json": {"campaign_id": str(campaign_id)}, "headers": auth("not-a-token")}),
        (401, "invalid_token", {"json": {"campaign_id": on_sale.id}, "headers": auth("not-a-token")}),
    ]
    for status, code, kwargs in cases:
        with statements() as sent:
            reply = same_both_ways(redis_app, client, REDEEM, **kwargs)
        assert (reply.status_code, reply.get_json()["error"]["code"]) == (status, code), kwargs
        assert (sent == []) is (status == 409 or code == "unauthorized"), (kwargs, sent)
    books()


def test_a_replay_after_the_sell_out_returns_the_first_coupon(redis_app, client, create_shop, create_campaign,
                                                               create_riders, token_for, books):
    """A retry with the Idempotency-Key of the purchase that took the last unit gets that purchase's reply back
    (201, replayed), not the mark's out_of_stock: the replay comes before the mark."""
    campaign_id = create_campaign(create_shop(), stock_total=1).id
    token = token_for(create_riders(1)[0])
    headers = {**auth(token), "Idempotency-Key": "last-unit"}
    try:
        first = client.post("/api/v1/redemptions", json={"campaign_id": campaign_id}, headers=headers)
        assert first.status_code == 201 and soldout.marks().is_marked_here(campaign_id)
        again = client.post("/api/v1/redemptions", json={"campaign_id": campaign_id}, headers=headers)
        assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
        assert again.get_json() == first.get_json()
        assert redeem(client, token, campaign_id).get_json()["error"]["code"] == "out_of_stock"
    finally:
        soldout.marks().clear({campaign_id})
    books()


def test_added_stock_clears_the_mark(sold_out, client, books):
    """An owner adding stock clears the mark when that unit of work commits, here and in Redis: the next attempt
    buys."""
    shop, campaign_id, _, _, late = sold_out
    raise_stock(owner=shop.owner, campaign=db.session.get(Campaign, campaign_id), amount=1)
    assert soldout.marks().is_marked_here(campaign_id)  # not before the commit
    commit_unit_of_work()
    assert not soldout.marks().is_marked_here(campaign_id) and not in_redis(campaign_id)
    assert redeem(client, late, campaign_id).status_code == 201
    assert soldout.marks().is_marked_here(campaign_id)  # sold out again, by that sale
    books()


def test_a_cancelled_coupon_clears_the_mark(sold_out, client, books):
    """A rider cancelling a coupon gives its stock back: the mark is cleared as the cancel commits, and the next
    attempt buys that coupon's unit."""
    _, campaign_id, first, bought, late = sold_out
    reply = client.post(f"/api/v1/me/coupons/{bought['coupon_id']}/cancel", headers=auth(first))
    assert reply.status_code == 200
    assert not soldout.marks().is_marked_here(campaign_id) and not in_redis(campaign_id)
    assert redeem(client, late, campaign_id).status_code == 201
    books()


def test_a_rolled_back_restock_leaves_the_mark(sold_out, client):
    """Stock added in a unit of work that rolls back gives nothing back: the mark stays."""
    shop, campaign_id, _, _, late = sold_out

    raise_stock(owner=shop.owner, campaign=db.session.get(Campaign, campaign_id), amount=1)
    rollback_unit_of_work()
    assert soldout.marks().is_marked_here(campaign_id) and in_redis(campaign_id)
    assert redeem(client, late, campaign_id).get_json()["error"]["code"] == "out_of_stock"


def test_a_mark_read_before_a_restock_never_lands(redis_app):
    """A mark computed from a reading older than a committed restock is refused by Redis (the stock generation
    moved), so it cannot hide the new stock."""
    marks = soldout.marks()
    campaign_id = 987_654
    marked, generation = marks.check(campaign_id)
    assert not marked and generation is not None
    marks.clear({campaign_id})  # a restock commits between the reading and the mark
    marks.mark(campaign_id, generation)
    assert not marks.is_marked_here(campaign_id) and not in_redis(campaign_id)
    marks.mark(campaign_id, marks.check(campaign_id)[1])  # a fresh reading may mark
    assert in_redis(campaign_id)
    marks.clear({campaign_id})


def test_without_redis_there_are_no_marks(app, client, create_shop, create_campaign, create_riders, token_for):
    """REDIS_URL unset: a sold-out campaign is never marked; every attempt asks the database."""
    shop = create_shop()
    campaign_id = create_campaign(shop, stock_total=1).id
    first, late = (token_for(rider) for rider in create_riders(2))
    assert redeem(client, first, campaign_id).status_code == 201
    assert not soldout.marks().is_marked_here(campaign_id)
    with statements() as sent:
        assert redeem(client, late, campaign_id).get_json()["error"]["code"] == "out_of_stock"
    assert any("campaigns" in statement for statement in sent)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def private_redis():
    """A redis-server of this test's own on a free port (the shared one is never stopped); yields (URL, stop)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            if Redis.from_url(url, socket_connect_timeout=0.2).ping():
                break
        except RedisError:  # not listening yet
            time.sleep(0.05)

    def stop() -> None:
        server.terminate()
        server.wait(timeout=10)

    yield url, stop
    if server.poll() is None:
        stop()


def test_redis_down_mid_sale_sells_through_the_database(app, private_redis, create_shop, create_campaign,
                                                         create_riders, token_for, books):
    """Redis stops in the middle of a sale: the attempts after it go to the database, none fails (no 5xx), stock
    added meanwhile is sold, and no more coupons are sold than the stock held: 0 oversold, the books balance."""
    url, stop = private_redis
    app.config["REDIS_URL"] = url
    try:
        shop = create_shop()
        campaign_id = create_campaign(shop, point_price=10, stock_total=30, per_rider_limit=1).id
        tokens = [token_for(rider) for rider in create_riders(160, points=100)]
        first = run_at_once(app, [post_redemption(app, token, campaign_id) for token in tokens[:80]])
        assert Counter(outcome(r) for r in first) == {"ok": 30, "out_of_stock": 50}
        assert soldout.marks().redis.exists(f"{soldout.marks().prefix}:soldout:{campaign_id}") == 1
        stop()  # Redis is gone, the mark with it
        raise_stock(owner=shop.owner, campaign=db.session.get(Campaign, campaign_id), amount=20)
        commit_unit_of_work()  # its clearing cannot reach Redis: logged, and the sale goes on
        second = run_at_once(app, [post_redemption(app, token, campaign_id) for token in tokens[80:]])
        assert Counter(outcome(r) for r in second) == {"ok": 20, "out_of_stock": 60}
        db.session.expire_all()
        assert db.session.query(Coupon).filter_by(campaign_id=campaign_id).count() == 50
        assert db.session.get(Campaign, campaign_id).stock_left == 0
        books()
    finally:
        app.config["REDIS_URL"] = None


def test_a_reading_without_a_mark_is_kept_briefly_and_never_lands_a_stale_mark(redis_app):
    """Within SOLD_OUT_UNMARKED_SECONDS a process answers 'not marked' from its last reading (another process's
    mark is seen once that has passed); after a restock committed elsewhere, the generation it kept cannot mark."""
    clock = [100.0]
    app_marks = soldout.marks()
    marks = soldout.SoldOutMarks(app_marks.redis, prefix=app_marks.prefix, unmarked_seconds=0.05,
                                 clock=lambda: clock[0])
    elsewhere = soldout.SoldOutMarks(app_marks.redis, prefix=app_marks.prefix)
    campaign_id = 987_655
    marked, generation = marks.check(campaign_id)
    assert not marked and generation is not None
    elsewhere.mark(campaign_id, elsewhere.check(campaign_id)[1])  # another process marks it
    assert in_redis(campaign_id)
    assert marks.check(campaign_id) == (False, generation)  # its own reading, still fresh
    clock[0] += 0.06
    assert marks.check(campaign_id) == (True, None)
    elsewhere.clear({campaign_id})
    clock[0] += 1  # its copy of the mark ends
    stale = marks.check(campaign_id)[1]
    elsewhere.clear({campaign_id})  # a restock commits elsewhere while that reading is kept
    marks.mark(campaign_id, marks.check(campaign_id)[1])
    assert not in_redis(campaign_id) and marks.check(campaign_id)[1] == stale
    clock[0] += 0.06
    marks.mark(campaign_id, marks.check(campaign_id)[1])  # a fresh reading may mark
    assert in_redis(campaign_id)
    marks.clear({campaign_id})


def test_readings_of_unknown_campaigns_are_bounded(redis_app):
    """Any id may be asked about: the readings a process keeps stay bounded."""
    app_marks = soldout.marks()
    marks = soldout.SoldOutMarks(app_marks.redis, prefix=app_marks.prefix, unmarked_seconds=60)
    for campaign_id in range(10_000_000, 10_000_000 + 3 * soldout._UNMARKED_KEPT):
        assert marks.check(campaign_id)[0] is False
    assert len(marks._unmarked) <= soldout._UNMARKED_KEPT
