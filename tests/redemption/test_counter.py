"""The counter: staff log in for a POS token and validate coupons; a coupon is used once, at its merchant's store
of its campaign, while valid, and codes cannot be forged."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import MerchantStatus
from metropoints.redemption.models import Coupon, CouponStatus
from tests.conftest import auth
from tests.redemption import PASSWORD


def validate(client, token: str, code, **extra):
    """POST /api/v1/counter/validate."""
    return client.post("/api/v1/counter/validate", json={"code": code, **extra}, headers=auth(token))


def test_staff_token_for_cashiers_and_owners(client, create_shop):
    """Active staff of an approved merchant get a staff token; a wrong password is a 401 bad_credentials."""
    shop = create_shop()
    for user in (shop.cashier, shop.owner):
        reply = client.post("/api/v1/staff/token", json={"email": user.email, "password": PASSWORD})
        assert reply.status_code == 200 and reply.get_json()["token"].startswith("st_")
    for body in ({"email": shop.cashier.email, "password": "wrong-password"}, {"email": "nobody@x.example",
                 "password": PASSWORD}, {"email": 5, "password": PASSWORD}, {"email": shop.cashier.email,
                 "password": ["x"]}, {}):
        reply = client.post("/api/v1/staff/token", json=body)
        assert (reply.status_code, reply.get_json()["error"]["code"]) == (401, "bad_credentials"), body


def test_no_staff_token_for_others(client, create_shop):
    """Operators, staff of a suspended merchant and deactivated cashiers get no staff token."""
    from metropoints.core.models import Role
    from metropoints.core.operations import create_user

    operator = create_user(email="ops@metro.example", password=PASSWORD, role=Role.operator)
    suspended = create_shop(status=MerchantStatus.suspended)
    shop = create_shop()
    shop.other_cashier.active = False
    commit_unit_of_work()
    for user in (operator, suspended.cashier, suspended.owner, shop.other_cashier):
        reply = client.post("/api/v1/staff/token", json={"email": user.email, "password": PASSWORD})
        assert reply.status_code == 401, user.email


def test_staff_login_is_rate_limited(client, create_shop):
    """Hammering the staff login gets 429."""
    shop = create_shop()
    codes = [client.post("/api/v1/staff/token", json={"email": shop.cashier.email, "password": "nope-nope"})
             .status_code for _ in range(12)]
    assert codes[0] == 401 and codes[-1] == 429


def test_accepted_once(client, bought, token_for):
    """The first validation is accepted and marks the coupon used; the next is a 409 with when and where."""
    shop, campaign, rider, result = bought
    token = token_for(shop.cashier)
    reply = validate(client, token, result.code)
    assert reply.status_code == 200
    assert reply.get_json() == {"result": "accepted", "coupon_id": result.coupon_id, "title": campaign.title,
                                "rider_display_name": rider.display_name, "store_id": shop.store.id}
    db.session.expire_all()
    coupon = db.session.get(Coupon, result.coupon_id)
    assert (coupon.status, coupon.used_store_id, coupon.used_by) == (CouponStatus.used, shop.store.id,
                                                                     shop.cashier.id)
    again = validate(client, token, result.code.lower())  # a scanner that types lower case finds it too
    error = again.get_json()["error"]
    assert (again.status_code, error["code"], error["store_id"]) == (409, "already_used", shop.store.id)
    assert datetime.fromisoformat(error["used_at"]) == coupon.used_at and error["used_at"].endswith("+08:00")


def test_already_used_says_when_in_the_service_zone(client, bought, token_for):
    """The 409 already_used reply's `used_at` is written as every other time of the API: ISO 8601 at +08:00 (Asia/
    Shanghai), and it is the moment the coupon was used."""
    from datetime import datetime

    shop, _, _, result = bought
    token = token_for(shop.cashier)
    assert validate(client, token, result.code).status_code == 200
    db.session.expire_all()
    used_at = db.session.get(Coupon, result.coupon_id).used_at
    error = validate(client, token, result.code).get_json()["error"]
    assert error["code"] == "already_used" and error["used_at"].endswith("+08:00"), error
    assert datetime.fromisoformat(error["used_at"]) == used_at


def test_owner_validates_at_a_store_they_name(client, bought, token_for):
    """An owner must say which of their stores; the campaign must be valid there."""
    shop, _, _, result = bought
    token = token_for(shop.owner)
    reply = validate(client, token, result.code)
    assert reply.status_code == 422 and reply.get_json()["error"]["field"] == "store_id"
    assert validate(client, token, result.code, store_id=shop.other_store.id).get_json()["error"]["code"] == \
        "wrong_store"
    assert validate(client, token, result.code, store_id="x").status_code == 422
    assert validate(client, token, result.code, store_id=shop.store.id).status_code == 200


def test_forged_and_altered_codes_are_unknown(client, bought, token_for, monkeypatch):
    """A made-up code, an altered signature or an altered random part is a 404 unknown_code; so is garbage (more of
    them than the guess limit allows, which is raised here: tests/redemption/test_counter_code.py checks it)."""
    from metropoints.redemption import counter
    from metropoints.redemption.codes import new_code

    monkeypatch.setattr(counter, "GUESS_LIMIT", 100)

    shop, _, _, result = bought
    token = token_for(shop.cashier)
    random_part, signature = result.code.split(".")
    flip = {"A": "B"}
    altered_sig = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    altered_random = ("A" if random_part[0] != "A" else "B") + random_part[1:] + "." + signature
    forged = "A" * 26 + "." + "A" * 16
    unissued = new_code()  # validly signed with our key, but no coupon carries it
    for code in (f"{random_part}.{altered_sig}", altered_random, forged, unissued, random_part, "", "x" * 5000,
                 None, 12, {"a": 1}, result.code + "A", "é" * 43):
        reply = validate(client, token, code)
        assert (reply.status_code, reply.get_json()["error"]["code"]) == (404, "unknown_code"), (code, flip)
    db.session.expire_all()
    assert db.session.get(Coupon, result.coupon_id).status == CouponStatus.issued


def test_another_secret_key_signs_differently(app, bought):
    """A code signed under another SECRET_KEY does not check (the key is what makes codes unforgeable)."""
    from metropoints.redemption.codes import normalise_code

    _, _, _, result = bought
    assert normalise_code(result.code) == result.code
    app.config["SECRET_KEY"] = "another-secret"
    try:
        assert normalise_code(result.code) is None
    finally:
        app.config["SECRET_KEY"] = "test-secret"


def test_wrong_merchant_and_wrong_store(client, bought, create_shop, token_for):
    """Another merchant's cashier gets 403 wrong_merchant; a cashier of a store the campaign is not valid at gets
    403 wrong_store; the coupon stays usable."""
    shop, _, _, result = bought
    stranger = create_shop()
    reply = validate(client, token_for(stranger.cashier), result.code)
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (403, "wrong_merchant")
    reply = validate(client, token_for(shop.other_cashier), result.code)
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (403, "wrong_store")
    assert validate(client, token_for(shop.cashier), result.code).status_code == 200


def test_expired_coupon_is_gone(client, bought, token_for):
    """Past its validity a coupon is a 410 expired, before and after the expiry job."""
    from metropoints.redemption.operations import expire_coupons

    shop, _, _, result = bought
    token = token_for(shop.cashier)
    db.session.get(Coupon, result.coupon_id).expires_at = utcnow() - timedelta(seconds=1)
    commit_unit_of_work()
    reply = validate(client, token, result.code)
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (410, "expired")
    assert expire_coupons() == 1
    commit_unit_of_work()
    reply = validate(client, token, result.code)
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (410, "expired")


def test_validity_runs_out_when_time_moves(bought):
    """Moving the clock past the validity (the operation takes `now`) makes the coupon expired."""
    from metropoints.redemption.errors import CouponExpired
    from metropoints.redemption.operations import validate

    shop, _, _, result = bought
    with pytest.raises(CouponExpired):
        validate(cashier=shop.cashier, code=result.code, now=result.expires_at)
    db.session.rollback()
    assert validate(cashier=shop.cashier, code=result.code, now=result.expires_at - timedelta(seconds=1)).coupon_id


def test_cancelled_coupon_is_gone(client, bought, token_for):
    """A cancelled coupon is a 410 cancelled."""
    from metropoints.redemption.operations import cancel

    shop, _, rider, result = bought
    cancel(rider_id=rider.id, coupon_id=result.coupon_id)
    commit_unit_of_work()
    reply = validate(client, token_for(shop.cashier), result.code)
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (410, "cancelled")


def test_counter_needs_a_staff_token_and_a_json_body(client, bought, token_for):
    """A rider token is a 403; no token a 401; a body that is not JSON a 400; a suspended merchant's cashier 403."""
    shop, _, rider, result = bought
    assert validate(client, token_for(rider), result.code).status_code == 403
    assert client.post("/api/v1/counter/validate", json={"code": result.code}).status_code == 401
    reply = client.post("/api/v1/counter/validate", data="{", content_type="application/json",
                        headers=auth(token_for(shop.cashier)))
    assert reply.status_code == 400
    token = token_for(shop.cashier)
    shop.merchant.status = MerchantStatus.suspended
    commit_unit_of_work()
    reply = validate(client, token, result.code)
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (403, "merchant_not_approved")
