"""The cashier's counter page: validate a coupon by the page's script (JSON) or a plain form post, see today's
validations; the same refusals and statuses as the POS API; cashiers (and owners naming a store) only; CSRF."""

from __future__ import annotations

import re

import pytest

from metropoints.core.db import commit_unit_of_work, db
from metropoints.redemption.operations import redeem
from tests.campaigns import page_text


@pytest.fixture
def make_coupon(create_campaign):
    """Creator: a coupon of a live campaign of the shop's (valid at its first store), bought by a new rider;
    returns (campaign, redemption)."""
    from metropoints.accrual.ledger import post_entry
    from metropoints.accrual.models import EntryKind
    from metropoints.core.models import Rider

    counter = iter(range(1, 1_000_000))

    def create(shop, title: str = "Latte voucher"):
        campaign = create_campaign(shop.merchant, [shop.store], title=title)
        rider = Rider(phone=f"1380000{next(counter):04d}", password_hash="!", display_name="Rider", points_balance=0)
        db.session.add(rider)
        db.session.flush()
        post_entry(rider_id=rider.id, points=1000, kind=EntryKind.adjustment, reason="test credit", actor="test")
        commit_unit_of_work()
        bought = redeem(rider_id=rider.id, campaign_id=campaign.id)
        commit_unit_of_work()
        return campaign, bought

    return create


def check(client, code, **extra):
    """POST /portal/counter/validate as the page's script does."""
    return client.post("/portal/counter/validate", json={"code": code, **extra}, headers={"Accept-Language": "en"})


def test_accepted_then_listed_then_already_used(client, login, create_shop, make_coupon):
    """A cashier validates a coupon: 200 accepted, it shows in today's list; the second try is 409 already_used
    with when and where."""
    shop = create_shop()
    _, bought = make_coupon(shop, title="Flat white voucher")
    login(shop.cashier)
    reply = check(client, bought.code)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    body = reply.get_json()
    assert (body["result"], body["code"], body["title"]) == ("accepted", "accepted", "Flat white voucher")
    assert body["coupon_id"] == bought.coupon_id and body["store_id"] == shop.store.id

    status, html = page_text(client, "/portal/counter")
    assert status == 200
    assert "Flat white voucher" in html and f"#{bought.coupon_id}" in html
    assert 'id="counter-code"' in html and "autofocus" in html and "Scan with camera" in html
    assert "counter.js" in html

    again = check(client, bought.code)
    assert again.status_code == 409
    body = again.get_json()
    assert (body["result"], body["code"]) == ("refused", "already_used")
    assert body["used_at"] and body["store_id"] == shop.store.id and body["store_name"] == shop.store.name


def test_unknown_and_forged_codes(client, login, create_shop, make_coupon):
    """A forged, altered or missing code is 404 unknown_code, and nothing is used."""
    shop = create_shop()
    _, bought = make_coupon(shop)
    login(shop.cashier)
    for code in ("NOT-A-CODE", bought.code[:-1] + ("A" if bought.code[-1] != "A" else "B"), "", None, 12):
        reply = check(client, code)
        assert (reply.status_code, reply.get_json()["code"]) == (404, "unknown_code"), code
    assert check(client, bought.code).status_code == 200


def test_wrong_merchant_and_wrong_store(client, login, create_shop, make_coupon):
    """Another merchant's cashier gets 403 wrong_merchant; the same merchant's cashier at a store the campaign
    is not valid at gets 403 wrong_store."""
    shop, other = create_shop(), create_shop()
    _, bought = make_coupon(shop)
    login(other.cashier)
    reply = check(client, bought.code)
    assert (reply.status_code, reply.get_json()["code"]) == (403, "wrong_merchant")
    login(shop.other_cashier)
    reply = check(client, bought.code)
    assert (reply.status_code, reply.get_json()["code"]) == (403, "wrong_store")
    login(shop.cashier)
    assert check(client, bought.code).status_code == 200


def test_form_post_without_javascript(client, login, create_shop, make_coupon):
    """The plain form post re-renders the page with the result: accepted, then already used."""
    shop = create_shop()
    _, bought = make_coupon(shop, title="Bagel voucher")
    login(shop.cashier)
    status, html = page_text(client, "/portal/counter", "post", data={"code": bought.code})
    assert status == 200 and "Accepted" in html and "counter-result ok" in html
    assert f"#{bought.coupon_id}" in html
    status, html = page_text(client, "/portal/counter", "post", data={"code": bought.code})
    assert status == 409 and "Already used" in html and "Used at" in html and shop.store.name in html
    status, html = page_text(client, "/portal/counter", "post", data={"code": "garbage"})
    assert status == 404 and "Unknown code" in html


def test_who_may_use_it(client, login, create_shop, make_coupon, create_operator):
    """Visitors go to the login page; operators get 403; an owner must name one of their stores: without one the
    page asks for it and a check is a 422, with one it works like a cashier's."""
    shop = create_shop()
    _, bought = make_coupon(shop)
    reply = client.get("/portal/counter")
    assert reply.status_code == 302 and "/login" in reply.headers["Location"]
    assert client.post("/portal/counter/validate", json={"code": bought.code}).status_code == 302

    login(create_operator())
    assert client.get("/portal/counter").status_code == 403
    assert check(client, bought.code).status_code == 403

    login(shop.owner)
    status, html = page_text(client, "/portal/counter")
    assert status == 200 and "Choose the store" in html and 'id="counter-code"' not in html
    reply = check(client, bought.code)
    assert (reply.status_code, reply.get_json()["code"]) == (422, "invalid")  # as the API: InvalidInput
    status, html = page_text(client, f"/portal/counter?store_id={shop.store.id}")
    assert status == 200 and 'id="counter-code"' in html
    reply = check(client, bought.code, store_id=shop.store.id)
    assert (reply.status_code, reply.get_json()["code"]) == (200, "accepted")


def test_nav_entry_for_cashiers(client, login, create_shop):
    """Cashiers see "Counter" in the navigation."""
    shop = create_shop()
    login(shop.cashier)
    _, html = page_text(client, "/portal/counter")
    assert re.search(r'<a href="/portal/counter">Counter</a>', html)


def test_csrf_required(app, client, login, create_shop, make_coupon):
    """With CSRF on, a post without the token is a 400 and uses nothing; with the page's token in X-CSRFToken it
    is accepted."""
    shop = create_shop()
    _, bought = make_coupon(shop)
    login(shop.cashier)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert check(client, bought.code).status_code == 400
        assert client.post("/portal/counter", data={"code": bought.code}).status_code == 400
        html = client.get("/portal/counter").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        reply = client.post("/portal/counter/validate", json={"code": bought.code}, headers={"X-CSRFToken": token})
        assert (reply.status_code, reply.get_json()["code"]) == (200, "accepted")
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
