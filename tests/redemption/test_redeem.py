"""Riders redeem campaigns over the API: one transaction for debit, stock and coupon, each refusal its own code."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from metropoints.accrual.models import EntryKind, LedgerEntry
from metropoints.campaigns.models import Campaign, CampaignStatus
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Rider
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import MerchantStatus
from metropoints.redemption.models import Coupon, CouponStatus
from tests.conftest import auth


def redeem(client, token: str, campaign_id, **headers):
    """POST /api/v1/redemptions."""
    return client.post("/api/v1/redemptions", json={"campaign_id": campaign_id}, headers={**auth(token), **headers})


def test_redeem_debits_takes_stock_and_issues_a_coupon(client, create_shop, create_campaign, create_riders,
                                                        token_for, books):
    """201 with the coupon; the balance, the stock and the ledger move together."""
    shop = create_shop()
    campaign = create_campaign(shop, point_price=300, stock_total=5, coupon_valid_days=14)
    rider = create_riders(points=1000)[0]
    reply = redeem(client, token_for(rider), campaign.id)
    assert reply.status_code == 201, reply.get_json()
    body = reply.get_json()
    assert list(body) == ["coupon_id", "code", "counter_code", "points_spent", "balance_after", "expires_at"]
    assert body["points_spent"] == 300 and body["balance_after"] == 700
    db.session.expire_all()
    coupon = db.session.get(Coupon, body["coupon_id"])
    assert coupon.code == body["code"] and coupon.status == CouponStatus.issued and coupon.rider_id == rider.id
    assert timedelta(days=14) - timedelta(minutes=1) < coupon.expires_at - utcnow() <= timedelta(days=14)
    assert db.session.get(Campaign, campaign.id).stock_left == 4
    assert db.session.get(Rider, rider.id).points_balance == 700
    entry = db.session.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.redemption))
    assert (entry.points, entry.ref, entry.balance_after) == (-300, f"coupon:{coupon.id}", 700)
    books()


def test_refusals_have_their_own_codes(client, create_shop, create_campaign, create_riders, token_for, books):
    """insufficient_points, limit_reached, out_of_stock and not_live are 409s; a refusal changes nothing."""
    shop = create_shop()
    rider, poor = create_riders(2, points=500)
    token = token_for(rider)
    pricey = create_campaign(shop, point_price=501)
    limited = create_campaign(shop, per_rider_limit=1)
    last_one = create_campaign(shop, stock_total=1)
    expect = [
        (pricey.id, token, "insufficient_points"),
        (limited.id, token, None), (limited.id, token, "limit_reached"),
        (last_one.id, token, None), (last_one.id, token_for(poor), "out_of_stock"),
    ]
    for campaign_id, bearer, code in expect:
        reply = redeem(client, bearer, campaign_id)
        if code is None:
            assert reply.status_code == 201, reply.get_json()
        else:
            assert (reply.status_code, reply.get_json()["error"]["code"]) == (409, code)
    assert redeem(client, token, pricey.id).get_json()["error"]["point_price"] == 501
    books()
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 300
    assert db.session.get(Rider, poor.id).points_balance == 500


@pytest.mark.parametrize("case", ["draft", "paused", "not_yet", "over", "suspended", "unknown"])
def test_not_live(case, client, create_shop, create_campaign, create_riders, token_for):
    """A campaign that is not on sale (status, window, merchant, or no such campaign) is a 409 not_live."""
    shop = create_shop()
    now = utcnow()
    fields = {"draft": {"status": CampaignStatus.draft}, "paused": {"status": CampaignStatus.paused},
              "not_yet": {"valid_from": now + timedelta(hours=1), "valid_until": now + timedelta(days=2)},
              "over": {"valid_from": now - timedelta(days=2), "valid_until": now - timedelta(minutes=1)},
              }.get(case, {})
    campaign = create_campaign(shop, **fields)
    if case == "suspended":
        shop.merchant.status = MerchantStatus.suspended
        commit_unit_of_work()
    reply = redeem(client, token_for(create_riders()[0]), campaign.id + (100 if case == "unknown" else 0))
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (409, "not_live")
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).stock_left == campaign.stock_total


@pytest.mark.parametrize("body", [{}, {"campaign_id": "1"}, {"campaign_id": None}, {"campaign_id": True},
                                  {"campaign_id": 1.5}, {"campaign_id": -1}, {"campaign_id": 0},
                                  {"campaign_id": 2**31}, {"campaign_id": 10**30}, {"campaign_id": [1]}])
def test_bad_input_is_a_422(body, client, create_riders, token_for):
    """A missing or malformed campaign_id is a 422 naming the field, never a 500."""
    reply = client.post("/api/v1/redemptions", json=body, headers=auth(token_for(create_riders()[0])))
    assert reply.status_code == 422 and reply.get_json()["error"]["field"] == "campaign_id"


def test_bad_bodies_and_tokens(client, create_shop, create_campaign, create_riders, token_for):
    """Not JSON is a 400; no token 401; a staff token 403."""
    shop = create_shop()
    campaign = create_campaign(shop)
    token = token_for(create_riders()[0])
    reply = client.post("/api/v1/redemptions", data="campaign_id=1", headers=auth(token),
                        content_type="application/json")
    assert reply.status_code == 400
    assert client.post("/api/v1/redemptions", json={"campaign_id": campaign.id}).status_code == 401
    assert redeem(client, token_for(shop.cashier), campaign.id).status_code == 403


def test_idempotent_retry_returns_the_first_coupon(client, create_shop, create_campaign, create_riders, token_for,
                                                   books):
    """A repeat with the same Idempotency-Key returns the first coupon and debits once; a new key buys another."""
    shop = create_shop()
    campaign = create_campaign(shop, per_rider_limit=5)
    rider = create_riders(points=1000)[0]
    token = token_for(rider)
    first = redeem(client, token, campaign.id, **{"Idempotency-Key": "k-1"})
    again = redeem(client, token, campaign.id, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    other = redeem(client, token, campaign.id, **{"Idempotency-Key": "k-2"})
    assert other.get_json()["coupon_id"] != first.get_json()["coupon_id"]
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 800
    assert len(db.session.scalars(select(Coupon)).all()) == 2
    books()


def test_a_refused_request_does_not_use_up_its_key(client, create_shop, create_campaign, create_riders, token_for):
    """Refused for lack of points, the same key works once the rider has them."""
    from metropoints.accrual.ledger import post_entry

    shop = create_shop()
    campaign = create_campaign(shop, point_price=200)
    rider = create_riders(points=100)[0]
    token = token_for(rider)
    assert redeem(client, token, campaign.id, **{"Idempotency-Key": "k"}).status_code == 409
    post_entry(rider_id=rider.id, points=100, kind=EntryKind.adjustment, reason="top up")
    commit_unit_of_work()
    assert redeem(client, token, campaign.id, **{"Idempotency-Key": "k"}).status_code == 201


def test_my_coupons_lists_newest_first_and_filters(client, create_shop, create_campaign, create_riders, token_for):
    """GET /me/coupons pages the rider's own coupons; an issued coupon past its validity shows as expired at once."""
    shop = create_shop()
    campaign = create_campaign(shop, per_rider_limit=10)
    rider, other = create_riders(2)
    token = token_for(rider)
    ids = [redeem(client, token, campaign.id).get_json()["coupon_id"] for _ in range(3)]
    redeem(client, token_for(other), campaign.id)
    db.session.get(Coupon, ids[0]).expires_at = utcnow() - timedelta(seconds=1)
    commit_unit_of_work()
    page = client.get("/api/v1/me/coupons?limit=2", headers=auth(token)).get_json()
    assert [c["coupon_id"] for c in page["items"]] == ids[:0:-1] and page["next_cursor"]
    item = page["items"][0]
    assert list(item)[:9] == ["coupon_id", "campaign_id", "title", "status", "code", "counter_code", "issued_at",
                              "expires_at", "used_at"]
    assert (item["title"], item["status"], item["used_at"]) == (campaign.title, "issued", None)
    rest = client.get(f"/api/v1/me/coupons?limit=2&cursor={page['next_cursor']}", headers=auth(token)).get_json()
    assert [c["coupon_id"] for c in rest["items"]] == [ids[0]] and rest["items"][0]["status"] == "expired"
    assert rest["next_cursor"] is None

    def listed(status: str) -> list[int]:
        reply = client.get(f"/api/v1/me/coupons?status={status}", headers=auth(token))
        return [c["coupon_id"] for c in reply.get_json()["items"]]

    assert listed("expired") == [ids[0]] and listed("issued") == ids[:0:-1] and listed("used") == []
    reply = client.get("/api/v1/me/coupons?status=lost", headers=auth(token))
    assert reply.status_code == 422 and reply.get_json()["error"]["field"] == "status"


def test_qr_code_is_an_svg_of_the_riders_own_coupon(client, create_shop, create_campaign, create_riders, token_for):
    """The QR endpoint answers image/svg+xml for the rider's coupon; another rider's or no coupon is a 404."""
    shop = create_shop()
    campaign = create_campaign(shop)
    rider, other = create_riders(2)
    coupon_id = redeem(client, token_for(rider), campaign.id).get_json()["coupon_id"]
    reply = client.get(f"/api/v1/me/coupons/{coupon_id}/qr.svg", headers=auth(token_for(rider)))
    assert reply.status_code == 200 and reply.mimetype == "image/svg+xml"
    svg = reply.get_data(as_text=True)
    assert "<svg" in svg and "</svg>" in svg and 'class="qrline"' in svg
    for path in (f"/api/v1/me/coupons/{coupon_id}/qr.svg", f"/api/v1/me/coupons/{coupon_id + 1}/qr.svg",
                 f"/api/v1/me/coupons/{10**20}/qr.svg"):
        reply = client.get(path, headers=auth(token_for(other)))
        assert (reply.status_code, reply.get_json()["error"]["code"]) == (404, "not_found")


def test_qr_of_a_cancelled_coupon_is_gone(app, create_shop, create_campaign, create_riders):
    """coupon_for_qr gives the rider's coupon whose QR the app shows, used and expired ones included (a wallet
    keeps them; the counter says why it refuses them); a cancelled one is gone (410 cancelled, with when), and
    another rider's or a missing one is not found."""
    from metropoints.redemption import operations as redemption
    from metropoints.redemption.errors import CouponCancelled, CouponNotFound

    shop = create_shop()
    campaign = create_campaign(shop, per_rider_limit=5)
    rider, other = create_riders(2)
    kept, used, expired, cancelled = (redemption.redeem(rider_id=rider.id, campaign_id=campaign.id).coupon_id
                                      for _ in range(4))
    redemption.validate(cashier=shop.cashier, code=db.session.get(Coupon, used).code)
    db.session.get(Coupon, expired).expires_at = utcnow() - timedelta(seconds=1)
    redemption.cancel(rider_id=rider.id, coupon_id=cancelled)
    commit_unit_of_work()
    db.session.expire_all()
    for coupon_id in (kept, used, expired):
        assert redemption.coupon_for_qr(rider_id=rider.id, coupon_id=coupon_id).id == coupon_id
    with pytest.raises(CouponCancelled) as gone:
        redemption.coupon_for_qr(rider_id=rider.id, coupon_id=cancelled)
    assert (gone.value.http_status, gone.value.code) == (410, "cancelled")
    assert gone.value.fields["cancelled_at"] == db.session.get(Coupon, cancelled).cancelled_at
    for rider_id, coupon_id in ((other.id, kept), (rider.id, cancelled + 1), (rider.id, 10**20)):
        with pytest.raises(CouponNotFound):
            redemption.coupon_for_qr(rider_id=rider_id, coupon_id=coupon_id)


def test_qr_endpoint_refuses_a_cancelled_coupon(client, create_shop, create_campaign, create_riders, token_for):
    """GET /api/v1/me/coupons/<id>/qr.svg of a cancelled coupon is a 410 cancelled, not its QR code; the QR of the
    rider's other coupons is still served."""
    shop = create_shop()
    campaign = create_campaign(shop)
    rider = create_riders()[0]
    token = token_for(rider)
    kept, cancelled = (redeem(client, token, campaign.id).get_json()["coupon_id"] for _ in range(2))
    assert client.post(f"/api/v1/me/coupons/{cancelled}/cancel", headers=auth(token)).status_code == 200
    reply = client.get(f"/api/v1/me/coupons/{cancelled}/qr.svg", headers=auth(token))
    assert (reply.status_code, reply.mimetype) == (410, "application/json")
    assert reply.get_json()["error"]["code"] == "cancelled"
    assert client.get(f"/api/v1/me/coupons/{kept}/qr.svg", headers=auth(token)).status_code == 200


def test_qr_encodes_the_code(app):
    """The SVG draws a full QR code (not a Micro QR) of exactly the code: the same modules segno makes for it,
    different ones for another code."""
    import re

    import segno

    from metropoints.redemption.codes import new_code, qr_svg

    code, other = new_code(), new_code()
    qr = segno.make_qr(code, error="m")
    assert not qr.is_micro and qr.mode == "alphanumeric"

    def modules(svg: bytes) -> str:
        return re.search(rb' d="([^"]+)"', svg).group(1).decode()

    expected = io_svg(qr)
    assert qr_svg(code).startswith(b"<?xml") and modules(qr_svg(code)) == modules(expected)
    assert modules(qr_svg(other)) != modules(expected)


def io_svg(qr) -> bytes:
    """segno's SVG of a QR code at the scale and border the endpoint uses."""
    import io

    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", scale=8, border=4)
    return buffer.getvalue()


def test_cancel_refunds_once_and_returns_the_stock(client, create_shop, create_campaign, create_riders, token_for,
                                                   books):
    """Cancelling an issued coupon gives the points back and the stock back; cancelling again is a 409."""
    shop = create_shop()
    campaign = create_campaign(shop, point_price=250, stock_total=3)
    rider, other = create_riders(2, points=1000)
    token = token_for(rider)
    coupon_id = redeem(client, token, campaign.id).get_json()["coupon_id"]
    reply = client.post(f"/api/v1/me/coupons/{coupon_id}/cancel", headers=auth(token_for(other)))
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (404, "not_found")
    reply = client.post(f"/api/v1/me/coupons/{coupon_id}/cancel", headers=auth(token))
    assert reply.status_code == 200
    assert reply.get_json() == {"coupon_id": coupon_id, "points_refunded": 250, "balance_after": 1000}
    again = client.post(f"/api/v1/me/coupons/{coupon_id}/cancel", headers=auth(token))
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "not_cancellable")
    assert again.get_json()["error"]["coupon_status"] == "cancelled"
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).stock_left == 3
    refund = db.session.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.refund))
    assert (refund.points, refund.ref) == (250, f"coupon:{coupon_id}")
    listed = client.get("/api/v1/me/coupons?status=cancelled", headers=auth(token)).get_json()["items"]
    assert [c["coupon_id"] for c in listed] == [coupon_id]
    # A cancelled coupon no longer counts against the per-rider limit.
    assert redeem(client, token, campaign.id).status_code == 201
    assert client.post(f"/api/v1/me/coupons/{10**20}/cancel", headers=auth(token)).status_code == 404
    books()


def test_cancel_with_an_idempotency_key_refunds_once(client, create_shop, create_campaign, create_riders, token_for):
    """A retried cancel with the same key replays the first reply."""
    shop = create_shop()
    campaign = create_campaign(shop)
    rider = create_riders(points=1000)[0]
    token = token_for(rider)
    coupon_id = redeem(client, token, campaign.id).get_json()["coupon_id"]
    path, headers = f"/api/v1/me/coupons/{coupon_id}/cancel", {**auth(token), "Idempotency-Key": "c"}
    first, again = client.post(path, headers=headers), client.post(path, headers=headers)
    assert first.status_code == again.status_code == 200 and first.get_json() == again.get_json()
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 1000


def test_expired_or_used_coupons_cannot_be_cancelled(client, create_shop, create_campaign, create_riders, token_for,
                                                     books):
    """A coupon past its validity refunds nothing (even before the expiry job), nor does a used one."""
    from metropoints.redemption.operations import validate

    shop = create_shop()
    campaign = create_campaign(shop, per_rider_limit=5)
    rider = create_riders(points=1000)[0]
    token = token_for(rider)
    old, used = (redeem(client, token, campaign.id).get_json() for _ in range(2))
    db.session.get(Coupon, old["coupon_id"]).expires_at = utcnow() - timedelta(seconds=1)
    validate(cashier=shop.cashier, code=used["code"])
    commit_unit_of_work()
    for coupon, status in ((old, "expired"), (used, "used")):
        reply = client.post(f"/api/v1/me/coupons/{coupon['coupon_id']}/cancel", headers=auth(token))
        assert reply.status_code == 409 and reply.get_json()["error"] == {
            "code": "not_cancellable", "message": "This coupon can no longer be cancelled.", "coupon_status": status}
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 800
    books()
