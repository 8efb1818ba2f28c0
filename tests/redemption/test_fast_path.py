"""The hot endpoints' fast path (core.fastpath): a redemption and a validation answered without Flask's request
machinery give the same status, bytes and headers as through Flask, for a success and every refusal; bad bodies are
a 4xx with a reason code, never a 500; no API reply of the hot paths sets a cookie; whatever the fast path does not
take goes to Flask unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask import request_started

from metropoints.core import fastpath
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import utcnow
from metropoints.redemption import operations
from metropoints.redemption.models import Coupon, CouponStatus
from tests.conftest import auth

REDEEM, VALIDATE = "/api/v1/redemptions", "/api/v1/counter/validate"


@contextmanager
def flask_requests(app) -> Iterator[list]:
    """The requests Flask dispatched itself while the block ran (the fast path dispatches none)."""
    seen: list = []

    def record(sender, **extra) -> None:
        seen.append(1)

    request_started.connect(record, app)
    try:
        yield seen
    finally:
        request_started.disconnect(record, app)


def through(app, client, path: str, *, fast: bool, taken: bool = True, **kwargs):
    """POST `path` with the fast path on or off; the reply, after checking which way it went (`taken`: whether the
    fast path, when on, takes this request at all)."""
    app.config["FAST_PATH"] = fast
    try:
        with flask_requests(app) as dispatched:
            reply = client.post(path, **kwargs)
    finally:
        app.config.pop("FAST_PATH", None)
    assert (len(dispatched) == 0) is (fast and taken), (path, kwargs, fast)
    return reply


def same_both_ways(app, client, path: str, taken: bool = True, **kwargs):
    """The fast path's reply equals Flask's: status line, bytes and every header, in order; the reply."""
    fast = through(app, client, path, fast=True, taken=taken, **kwargs)
    slow = through(app, client, path, fast=False, **kwargs)
    assert (fast.status, fast.get_data(), fast.headers.to_wsgi_list()) == \
        (slow.status, slow.get_data(), slow.headers.to_wsgi_list())
    return fast


def code_of(reply) -> str:
    """The error code of a JSON error reply."""
    return reply.get_json()["error"]["code"]


def test_a_redemption_sells_through_the_fast_path_as_through_flask(app, client, create_shop, create_campaign,
                                                                    create_riders, token_for, books):
    """A sale on the fast path: 201 with the contract's fields in Flask's order and encoding, the same headers as a
    sale through Flask, and books that balance."""
    shop = create_shop()
    campaign = create_campaign(shop, per_rider_limit=5)
    first, second = (token_for(rider) for rider in create_riders(2))
    fast = through(app, client, REDEEM, fast=True, json={"campaign_id": campaign.id}, headers=auth(first))
    slow = through(app, client, REDEEM, fast=False, json={"campaign_id": campaign.id}, headers=auth(second))
    assert fast.status == slow.status == "201 CREATED"
    assert list(fast.get_json()) == list(slow.get_json()) == [
        "coupon_id", "code", "counter_code", "points_spent", "balance_after", "expires_at"]
    with app.test_request_context():
        assert fast.get_data() == app.json.response(fast.get_json()).get_data()  # Flask's JSON bytes
    assert fast.headers.to_wsgi_list()[2:] == slow.headers.to_wsgi_list()[2:]  # past Content-Type and -Length
    assert fast.headers["Content-Length"] == str(len(fast.get_data()))
    books()


def test_every_refusal_of_a_redemption_is_the_same_both_ways(app, client, create_shop, create_campaign,
                                                             create_riders, token_for, books):
    """401 without or with a bad token, 403 for a staff token, 400 for bodies that are not a JSON object (bad bytes,
    an array, null, NUL text), 422 for a campaign id that is missing, not a whole number, a boolean or too large,
    409 not_live / limit_reached / insufficient_points / out_of_stock: the same status, bytes and headers."""
    shop = create_shop()
    campaign = create_campaign(shop, per_rider_limit=1, stock_total=2)
    rider, poor, late = create_riders(3)
    token = token_for(rider)
    poor_token = token_for(create_riders(1, points=10)[0])
    assert through(app, client, REDEEM, fast=True, json={"campaign_id": campaign.id},
                   headers=auth(token)).status_code == 201
    assert through(app, client, REDEEM, fast=True, json={"campaign_id": campaign.id},
                   headers=auth(token_for(late))).status_code == 201  # the last unit: sold out now
    other = create_campaign(shop, per_rider_limit=1)
    cases = [
        (401, "unauthorized", {"json": {"campaign_id": campaign.id}}),
        (401, "unauthorized", {"json": {"campaign_id": campaign.id}, "headers": {"Authorization": "Basic abc"}}),
        (401, "invalid_token", {"json": {"campaign_id": campaign.id}, "headers": auth("not-a-token")}),
        (403, "forbidden", {"json": {"campaign_id": campaign.id}, "headers": auth(token_for(shop.cashier))}),
        (400, "malformed_json", {"data": b"\xff\xfe{", "content_type": "application/json", "headers": auth(token)}),
        (400, "malformed_json", {"data": b"{", "content_type": "application/json", "headers": auth(token)}),
        (400, "malformed_json", {"data": b"[1]", "content_type": "application/json", "headers": auth(token)}),
        (400, "malformed_json", {"data": b"null", "content_type": "application/json", "headers": auth(token)}),
        (400, "malformed_json", {"data": b"", "content_type": "application/json", "headers": auth(token),
                                 "taken": False}),  # no Content-Length: Flask's
        (400, "malformed_json", {"data": b'{"campaign_id": 1, "x": "\\u0000"}', "content_type": "application/json",
                                 "headers": auth(token)}),
        (400, "malformed_json", {"data": b"[" * 100_000, "content_type": "application/json",
                                 "headers": auth(token), "taken": False}),  # too long for the fast path: Flask's
        (400, "malformed_json", {"data": b'{"campaign_id": 1}', "content_type": "text/plain",
                                 "headers": auth(token), "taken": False}),
        (422, "invalid", {"json": {}, "headers": auth(token)}),
        (422, "invalid", {"json": {"campaign_id": "7"}, "headers": auth(token)}),
        (422, "invalid", {"json": {"campaign_id": True}, "headers": auth(token)}),
        (422, "invalid", {"json": {"campaign_id": 10**40}, "headers": auth(token)}),
        (422, "invalid", {"json": {"campaign_id": 2**31}, "headers": auth(token)}),
        (422, "invalid", {"json": {"campaign_id": -1}, "headers": auth(token)}),
        (409, "not_live", {"json": {"campaign_id": 2**31 - 1}, "headers": auth(token)}),
        (409, "limit_reached", {"json": {"campaign_id": other.id}, "headers": auth(token)}),
        (409, "insufficient_points", {"json": {"campaign_id": other.id}, "headers": auth(poor_token)}),
        (409, "out_of_stock", {"json": {"campaign_id": campaign.id}, "headers": auth(token_for(poor))}),
    ]
    assert through(app, client, REDEEM, fast=True, json={"campaign_id": other.id},
                   headers=auth(token)).status_code == 201  # so the next one on it is over the limit
    for status, code, kwargs in cases:
        reply = same_both_ways(app, client, REDEEM, **kwargs)
        assert (reply.status_code, code_of(reply)) == (status, code), kwargs
    books()


def test_every_refusal_of_a_validation_is_the_same_both_ways(app, client, bought, create_campaign, create_shop,
                                                             create_riders, token_for):
    """200 accepted, then 409 already_used, 410 cancelled and expired, 403 wrong_store / wrong_merchant / a rider's
    token, 404 unknown_code (a code missing, not text or unknown), 422 for an owner without a store or a huge store
    id, 429 once the
    store's counter is locked (with Retry-After): the same status, bytes and headers both ways."""
    shop, campaign, rider, result = bought
    cashier = token_for(shop.cashier)
    fast = through(app, client, VALIDATE, fast=True, json={"code": result.code}, headers=auth(cashier))
    assert fast.status_code == 200 and fast.get_json()["result"] == "accepted"
    with app.test_request_context():
        assert fast.get_data() == app.json.response(fast.get_json()).get_data()
    cancelled = operations.redeem(rider_id=rider.id, campaign_id=campaign.id)
    commit_unit_of_work()
    operations.cancel(rider_id=rider.id, coupon_id=cancelled.coupon_id)
    commit_unit_of_work()
    other_store = create_campaign(shop, stores=[shop.other_store])
    elsewhere = operations.redeem(rider_id=rider.id, campaign_id=other_store.id)
    foreign = create_campaign(create_shop())
    foreign_coupon = operations.redeem(rider_id=create_riders()[0].id, campaign_id=foreign.id)
    expiring = operations.redeem(rider_id=create_riders()[0].id, campaign_id=campaign.id)
    commit_unit_of_work()
    expired = db.session.get(Coupon, expiring.coupon_id)  # bought two days ago, valid for one
    expired.issued_at, expired.expires_at = utcnow() - timedelta(days=2), utcnow() - timedelta(days=1)
    commit_unit_of_work()
    assert db.session.get(Coupon, expiring.coupon_id).status == CouponStatus.issued
    cases = [
        (409, "already_used", {"code": result.code}, cashier),
        (410, "cancelled", {"code": cancelled.code}, cashier),
        (410, "expired", {"code": expiring.code}, cashier),
        (403, "wrong_store", {"code": elsewhere.code}, cashier),
        (403, "wrong_merchant", {"code": foreign_coupon.code}, cashier),
        (403, "forbidden", {"code": result.code}, token_for(rider)),
        (404, "unknown_code", {}, cashier),  # no code matches no coupon, as a mistyped one
        (404, "unknown_code", {"code": 12}, cashier),
        (422, "invalid", {"code": result.code}, token_for(shop.owner)),
        (422, "invalid", {"code": result.code, "store_id": 10**30}, token_for(shop.owner)),
        (422, "invalid", {"code": result.code, "store_id": 10**30}, cashier),
    ]
    for status, code, body, token in cases:
        reply = same_both_ways(app, client, VALIDATE, json=body, headers=auth(token))
        assert (reply.status_code, code_of(reply)) == (status, code), body
    for _ in range(3):  # ten unknown codes in all, each case sent twice: the counter locks
        reply = same_both_ways(app, client, VALIDATE, json={"code": "1234-5678-9012"}, headers=auth(cashier))
        assert (reply.status_code, code_of(reply)) == (404, "unknown_code")
    reply = same_both_ways(app, client, VALIDATE, json={"code": result.code}, headers=auth(cashier))
    assert (reply.status_code, code_of(reply)) == (429, "too_many_attempts")
    assert int(reply.headers["Retry-After"]) > 0


def test_the_hot_paths_set_no_cookie(app, client, bought, create_riders, token_for):
    """No reply of a redemption or a validation sets a cookie, whichever way it went (sold, refused, unauthorized),
    even for a client that holds a session cookie from a page."""
    shop, campaign, _, result = bought
    client.get("/login")  # a page: the client may now hold a session cookie
    replies = []
    for fast in (True, False):
        buyer = token_for(create_riders()[0])
        cashier = token_for(shop.cashier)
        replies += [
            *(through(app, client, REDEEM, fast=fast, json={"campaign_id": campaign.id}, headers=auth(buyer))
              for _ in range(3)),  # two coupons, then limit_reached
            through(app, client, REDEEM, fast=fast, json={"campaign_id": campaign.id}),
            through(app, client, VALIDATE, fast=fast, json={"code": result.code}, headers=auth(cashier)),
            through(app, client, VALIDATE, fast=fast, json={"code": "x"}, headers=auth("bad")),
        ]
    assert [reply.status_code for reply in replies] == [201, 201, 409, 401, 200, 401, 201, 201, 409, 401, 409, 401]
    for reply in replies:
        assert "Set-Cookie" not in reply.headers, reply.headers
        assert reply.headers["Cache-Control"] == "no-store"
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_what_the_fast_path_does_not_take_goes_to_flask(app, client, create_shop, create_campaign, create_riders,
                                                       token_for):
    """An Idempotency-Key, another media type, another method, a path with a trailing slash: Flask answers, and an
    idempotent repeat still replays the first coupon."""
    shop = create_shop()
    campaign = create_campaign(shop, per_rider_limit=1)
    token = token_for(create_riders()[0])
    headers = {**auth(token), "Idempotency-Key": "k-1"}
    app.config["FAST_PATH"] = True
    try:
        with flask_requests(app) as dispatched:
            first = client.post(REDEEM, json={"campaign_id": campaign.id}, headers=headers)
            again = client.post(REDEEM, json={"campaign_id": campaign.id}, headers=headers)
            plain = client.post(REDEEM, data='{"campaign_id": 1}', content_type="text/plain", headers=auth(token))
            got = client.get(REDEEM, headers=auth(token))
            slash = client.post(REDEEM + "/", json={"campaign_id": campaign.id}, headers=auth(token))
    finally:
        app.config.pop("FAST_PATH", None)
    assert len(dispatched) == 5
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert first.get_json() == again.get_json()
    assert (plain.status_code, code_of(plain)) == (400, "malformed_json")
    assert got.status_code == 405 and slash.status_code in (404, 405, 308)


def test_an_unexpected_error_is_flasks_500(app, client, create_shop, create_campaign, create_riders, token_for,
                                          monkeypatch):
    """A fault inside the view on the fast path is answered by Flask's own handler: the API's JSON 500, as through
    Flask (and propagated under test, as Flask does)."""
    shop = create_shop()
    campaign = create_campaign(shop)
    token = token_for(create_riders()[0])

    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(operations, "redeem", broken)
    with pytest.raises(RuntimeError):
        through(app, client, REDEEM, fast=True, json={"campaign_id": campaign.id}, headers=auth(token))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        reply = same_both_ways(app, client, REDEEM, json={"campaign_id": campaign.id}, headers=auth(token))
    finally:
        app.config.pop("PROPAGATE_EXCEPTIONS")
    assert reply.status_code == 500 and code_of(reply) == "http_error"


def test_the_fast_path_takes_only_views_it_can_read_whole(app):
    """A rate-limited view, a view without a body or a token, or one with path parameters is refused at install,
    so nothing a decorator does is ever skipped."""
    for endpoint in ("riders_api.staff_token", "riders_api.my_coupons", "riders_api.cancel_coupon",
                     "riders_api.register"):
        with pytest.raises(ValueError):
            fastpath.fast_route(app, endpoint)
    assert fastpath.fast_route(app, "riders_api.redeem").idempotent
    assert fastpath.fast_route(app, "riders_api.counter_validate").cached
