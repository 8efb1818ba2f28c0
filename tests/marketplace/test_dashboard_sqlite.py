"""The dashboards on SQLite (the default configuration, `make run`): the panels' day series group by the service
day there too."""

from __future__ import annotations

import pytest

from metropoints.core.panels import day_window
from metropoints.redemption.models import CouponStatus
from metropoints.redemption.panels import coupon_figures
from tests.conftest import SHOP_PASSWORD
from tests.marketplace.conftest import login, page

pytestmark = pytest.mark.sqlite


def test_owner_dashboard_on_sqlite(sqlite_app, create_shop, create_campaign_row, create_coupon, create_operator):
    """On SQLite the coupons are counted per Shanghai day like on PostgreSQL, and the owner's dashboard and the
    operator's merchant page render."""
    shop = create_shop()
    campaign = create_campaign_row(shop)
    create_coupon(campaign, status=CouponStatus.used, store=shop.store, points=80)
    create_coupon(campaign, days_ago=3, status=CouponStatus.cancelled)
    create_coupon(campaign, days_ago=40)
    figures = coupon_figures(shop.merchant.id, day_window(30))
    assert (figures.total("bought"), figures.total("used"), figures.total("points")) == (2, 1, 80)
    assert sum(figures.bought.values()) == 2 and len(figures.bought) == 2
    client = sqlite_app.test_client()
    login(client, shop.owner.email, SHOP_PASSWORD)
    html = page(client, "/portal").get_data(as_text=True)
    assert 'data-figure="bought">2<' in html and 'data-figure="points">80<' in html
    login(client, create_operator().email)
    merchant_page = page(client, f"/portal/backoffice/merchants/{shop.merchant.id}?days=90")
    assert merchant_page.status_code == 200 and 'data-figure="bought">3<' in merchant_page.get_data(as_text=True)
