"""The owner's dashboard: the merchant's coupons, points, fees and live campaigns over 30 or 90 days, from the
panels of the packages above marketplace; the cashier's way to the counter."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from metropoints.campaigns.models import CampaignStatus
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.panels import registered
from metropoints.core.timeutil import service_day, utcnow
from metropoints.redemption.counter import GUESS_LIMIT
from metropoints.redemption.models import CouponStatus, UnknownCodeAttempt
from metropoints.settlement.models import FeePlan, StatementStatus
from metropoints.settlement.periods import period_of
from tests.conftest import SHOP_PASSWORD
from tests.marketplace.conftest import login, page


def figure(html: str, name: str) -> str:
    """The text of the figure marked data-figure=name."""
    match = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert match, f"no figure {name!r} on the page"
    return match.group(1).strip()


@pytest.fixture
def shop_with_activity(create_shop, create_campaign_row, create_coupon, create_statement):
    """A shop whose live campaign sold coupons today (one used, one cancelled, one open), 45 days ago (used 40 days
    ago) and 100 days ago; an ended campaign; statements owed, overdue and paid; and another shop selling today."""
    shop, other = create_shop(), create_shop()
    live = create_campaign_row(shop, title="Laobian dumplings", stock_left=60)
    create_campaign_row(shop, title="Winter noodles", status=CampaignStatus.ended)
    create_coupon(live, status=CouponStatus.used, store=shop.store, points=100)
    create_coupon(live, status=CouponStatus.cancelled, points=100)
    create_coupon(live, points=100)
    create_coupon(live, days_ago=45, used_days_ago=40, status=CouponStatus.used, store=shop.store, points=70)
    create_coupon(live, days_ago=100, points=999)
    theirs = create_campaign_row(other)
    for _ in range(2):
        create_coupon(theirs, status=CouponStatus.used, store=other.store, points=500)
    this_month = period_of(utcnow())
    create_statement(shop.merchant, date(2026, 1, 1), total_fen=12345)
    create_statement(shop.merchant, date(2026, 2, 1), total_fen=1000, due_at=utcnow() - timedelta(days=1))
    create_statement(shop.merchant, date(2025, 12, 1), total_fen=50000, status=StatementStatus.paid)
    create_statement(other.merchant, date(2026, 1, 1), total_fen=777777)
    db.session.add(FeePlan(merchant_id=shop.merchant.id, effective_from=this_month, fee_per_coupon_fen=150,
                           monthly_fee_fen=1000))
    commit_unit_of_work()
    return shop


def test_every_package_puts_its_panel_on_the_owner_dashboard(app):
    """The owner's dashboard shows redemption's, settlement's and campaigns' panels, registered by the app (marketplace
    imports none of them)."""
    assert registered("owner_dashboard") == [
        "metropoints.redemption.panels.owner_dashboard_panel", "metropoints.settlement.panels.owner_dashboard_panel",
        "metropoints.campaigns.panels.owner_dashboard_panel"]


def test_owner_sees_coupons_points_fees_and_live_campaigns(client, shop_with_activity):
    """Over 30 days: coupons bought (cancelled ones counted, and said), used at the stores, points taken net of
    cancellations; fees owed (open and overdue statements, not paid ones) and this month's fees so far (used coupons ×
    the plan + its monthly fee), in yuan; the live campaigns with their stock; nothing of another merchant's."""
    shop = shop_with_activity
    login(client, shop.owner.email, SHOP_PASSWORD)
    html = page(client, "/portal").get_data(as_text=True)
    assert (figure(html, "bought"), figure(html, "used"), figure(html, "points")) == ("3", "1", "200")
    assert "1 of them cancelled since" in html
    assert figure(html, "owed") == "¥133.45" and figure(html, "overdue") == "¥10.00 overdue"
    assert figure(html, "month") == "¥11.50" and "1 used coupons × ¥1.50" in html and "monthly fee ¥10.00" in html
    assert "Laobian dumplings" in html and "Winter noodles" not in html and "<strong>60</strong>/100" in html
    assert html.count("<svg") == 4 and "Coupons bought per day" in html and "Fees from used coupons per day" in html
    assert "¥7,777.77" not in html


def test_the_window_switch_reads_90_days(client, shop_with_activity):
    """?days=90 counts the coupons bought and used in the last 90 days; anything but 30 or 90 is 30; a coupon older
    than the window counts in neither."""
    shop = shop_with_activity
    login(client, shop.owner.email, SHOP_PASSWORD)
    html = page(client, "/portal?days=90").get_data(as_text=True)
    assert (figure(html, "bought"), figure(html, "used"), figure(html, "points")) == ("4", "2", "270")
    assert 'href="/portal?days=90" aria-current="page"' in html
    odd = page(client, "/portal?days=365").get_data(as_text=True)
    assert figure(odd, "bought") == "3" and 'href="/portal?days=30" aria-current="page"' in odd


def test_a_day_series_draws_every_day_of_the_window(client, shop_with_activity):
    """Each chart has a point per service day of the window: its description runs from the window's first day to
    today, and today's value is the last one."""
    shop = shop_with_activity
    login(client, shop.owner.email, SHOP_PASSWORD)
    html = page(client, "/portal").get_data(as_text=True)
    today = service_day(utcnow())
    first = today - timedelta(days=29)
    assert f'<desc id="owner-coupons-bought-desc">{first.isoformat()}: 0; {today.isoformat()}: 3</desc>' in html


def test_dashboard_in_chinese(client, shop_with_activity):
    """The dashboard's panels speak the page's language: in Chinese the panels' headings, links and the window switch
    are Chinese (each panel renders in the request's locale)."""
    shop = shop_with_activity
    login(client, shop.owner.email, SHOP_PASSWORD)
    html = page(client, "/portal", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert 'lang="zh-CN"' in html and "进行中的权益活动" in html and ">30 天<" in html and ">结算单</a>" in html
    assert "Live campaigns" not in html


def test_a_cashier_gets_a_link_to_the_counter(client, create_shop):
    """A cashier's landing page names the store and links to the counter page; no owner's figures."""
    shop = create_shop()
    login(client, shop.cashier.email, SHOP_PASSWORD)
    html = page(client, "/portal").get_data(as_text=True)
    assert 'href="/portal/counter"' in html and "comes here soon" not in html
    assert "data-figure" not in html


def test_the_dashboard_names_a_locked_counter(client, create_shop):
    """A store whose counter was sent 10 unknown codes in the last minutes is named on the owner's dashboard with
    the time its counter opens again; the other store is not."""
    shop = create_shop()
    now = utcnow()
    db.session.add_all(UnknownCodeAttempt(store_id=shop.store.id, at=now - timedelta(seconds=n))
                       for n in range(GUESS_LIMIT))
    commit_unit_of_work()
    login(client, shop.owner.email, SHOP_PASSWORD)
    html = page(client, "/portal").get_data(as_text=True)
    assert f'data-store-id="{shop.store.id}"' in html and f'data-store-id="{shop.other_store.id}"' not in html
    assert shop.store.name in html and "unknown codes" in html
