"""The owner's activity page and CSV: per-campaign and per-store counts over a period of Asia/Shanghai days,
only the owner's own merchant, owners only, invalid dates refused (422)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import SERVICE_ZONE, utcnow
from metropoints.redemption.models import Coupon, CouponStatus
from metropoints.reports import rollups
from tests.campaigns import page_text


@pytest.fixture
def make_coupon():
    """Creator: a coupon row of a campaign, bought by a new rider, in the given state (committed)."""
    from metropoints.core.models import Rider

    counter = iter(range(1, 1_000_000))

    def create(campaign, *, status=CouponStatus.issued, issued_at=None, used_at=None, store=None, points=400):
        n = next(counter)
        rider = Rider(phone=f"1370000{n:04d}", password_hash="!", display_name="Rider", points_balance=0)
        db.session.add(rider)
        db.session.flush()
        issued_at = issued_at or utcnow() - timedelta(hours=2)
        now = utcnow()
        coupon = Coupon(campaign_id=campaign.id, rider_id=rider.id, code=f"TEST-{campaign.id}-{n}", status=status,
                        points_spent=points, issued_at=issued_at, expires_at=issued_at + timedelta(days=30),
                        used_at=(used_at or now) if status == CouponStatus.used else None,
                        used_store_id=store.id if status == CouponStatus.used else None,
                        cancelled_at=now if status == CouponStatus.cancelled else None,
                        expired_at=now if status == CouponStatus.expired else None)
        db.session.add(coupon)
        commit_unit_of_work()
        return coupon

    return create


@pytest.fixture
def two_shops(create_shop, create_campaign, make_coupon):
    """Shop A with two campaigns (one with a Chinese title) and coupons in every state; shop B with its own."""
    a, b = create_shop(), create_shop()
    latte = create_campaign(a.merchant, [a.store, a.other_store], title="拿铁咖啡券")
    bagel = create_campaign(a.merchant, [a.store], title="Bagel voucher")
    coupons = {
        "issued": make_coupon(latte),
        "used_here": make_coupon(latte, status=CouponStatus.used, store=a.store),
        "used_there": make_coupon(latte, status=CouponStatus.used, store=a.other_store),
        "cancelled": make_coupon(latte, status=CouponStatus.cancelled),
        "expired": make_coupon(bagel, status=CouponStatus.expired, points=250),
        "bagel_used": make_coupon(bagel, status=CouponStatus.used, store=a.store, points=250),
        "old": make_coupon(bagel, issued_at=utcnow() - timedelta(days=90)),  # outside the default 30 days
    }
    theirs = create_campaign(b.merchant, [b.store], title="Other shop secret")
    make_coupon(theirs, status=CouponStatus.used, store=b.store)
    make_coupon(theirs)
    rollups.rebuild()  # the coupons above are raw rows; the page reads the rollup
    commit_unit_of_work()
    return a, b, latte, bagel, coupons


def cells(html: str, attr: str, key: int) -> dict[str, str]:
    """The data-field cells of the table row with data-<attr>="key"."""
    row = re.search(rf'<tr data-{attr}="{key}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {attr} {key}"
    return dict(re.findall(r'data-field="(\w+)">([^<]*)<', row.group(1)))


def test_counts_per_campaign_and_store(client, login, two_shops):
    """Issued, used, cancelled, expired and points (net of refunds) per campaign, validations per store, for the
    last 30 days."""
    a, b, latte, bagel, _ = two_shops
    login(a.owner)
    status, html = page_text(client, "/portal/activity")
    assert status == 200, html
    assert cells(html, "campaign-id", latte.id) == {"issued": "4", "used": "2", "cancelled": "1", "expired": "0",
                                                    "points": "1200"}
    assert cells(html, "campaign-id", bagel.id) == {"issued": "2", "used": "1", "cancelled": "0", "expired": "1",
                                                    "points": "500"}
    assert cells(html, "store-id", a.store.id) == {"validations": "2"}
    assert cells(html, "store-id", a.other_store.id) == {"validations": "1"}
    assert "拿铁咖啡券" in html and 'href="/portal/activity"' in html  # the nav entry
    assert "Other shop secret" not in html and f'data-store-id="{b.store.id}"' not in html


def test_period_is_respected(client, login, two_shops):
    """A period long ago sees only the old coupon; the period's days are Asia/Shanghai days."""
    a, _, latte, bagel, _ = two_shops
    login(a.owner)
    day = (utcnow() - timedelta(days=90)).astimezone(SERVICE_ZONE).date().isoformat()
    status, html = page_text(client, f"/portal/activity?from={day}&to={day}")
    assert status == 200, html
    assert cells(html, "campaign-id", bagel.id)["issued"] == "1"
    assert cells(html, "campaign-id", latte.id)["issued"] == "0"
    assert cells(html, "store-id", a.store.id) == {"validations": "0"}


def test_csv_export(client, login, two_shops):
    """Header, BOM, one row per coupon of the merchant issued or used in the period, Chinese intact; streamed."""
    a, _, latte, _, coupons = two_shops
    login(a.owner)
    today = utcnow().astimezone(SERVICE_ZONE).date()
    first = (today - timedelta(days=6)).isoformat()
    reply = client.get(f"/portal/activity.csv?from={first}&to={today.isoformat()}")
    assert reply.status_code == 200
    assert reply.is_streamed
    assert reply.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert reply.headers["Content-Disposition"] == f"attachment; filename=activity-{first}-{today.isoformat()}.csv"
    raw = reply.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["coupon_id", "campaign_id", "campaign_title", "status", "points_spent", "issued_at", "used_at",
                       "used_store_id", "store_name"]
    body = {int(row[0]): row for row in rows[1:]}
    expected = {c.id for name, c in coupons.items() if name != "old"}
    assert set(body) == expected and len(rows) - 1 == len(expected)
    used = body[coupons["used_here"].id]
    assert used[1:5] == [str(latte.id), "拿铁咖啡券", "used", "400"]
    assert used[5].endswith("+08:00") and used[6].endswith("+08:00")
    assert used[7:] == [str(a.store.id), a.store.name]
    assert body[coupons["issued"].id][6:] == ["", "", ""]
    assert "Other shop secret" not in raw.decode("utf-8")


def test_default_csv_covers_last_30_days(client, login, two_shops):
    """Without dates the CSV covers the last 30 days, named after them."""
    a, *_ = two_shops
    login(a.owner)
    reply = client.get("/portal/activity.csv")
    today = utcnow().astimezone(SERVICE_ZONE).date()
    name = f"activity-{(today - timedelta(days=29)).isoformat()}-{today.isoformat()}.csv"
    assert reply.status_code == 200 and name in reply.headers["Content-Disposition"]
    assert len(reply.get_data().decode("utf-8-sig").strip().splitlines()) == 1 + 6


@pytest.mark.parametrize("query", ["from=2024-13-01&to=2024-12-31", "from=yesterday", "to=2024-02-30",
                                   "from=2024-03-02&to=2024-03-01", "from=2020-01-01&to=2024-01-01"])
def test_bad_dates_are_422(client, login, create_shop, query):
    """Invalid, reversed or over-long periods: the page with a form error, 422, for the page and the CSV."""
    shop = create_shop()
    login(shop.owner)
    status, html = page_text(client, f"/portal/activity?{query}")
    assert status == 422 and 'role="alert"' in html
    assert client.get(f"/portal/activity.csv?{query}").status_code == 422


def test_owners_only(client, login, create_shop, create_operator):
    """Cashiers and operators get 403 for the page and the CSV; visitors are sent to log in."""
    shop = create_shop()
    assert client.get("/portal/activity").status_code == 302
    assert client.get("/portal/activity.csv").status_code == 302
    for user in (shop.cashier, create_operator()):
        login(user)
        assert client.get("/portal/activity").status_code == 403
        assert client.get("/portal/activity.csv").status_code == 403
