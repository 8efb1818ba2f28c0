"""In a real browser: a station kiosk shows the live catalogue from its feed, and a cashier checks a coupon at the
counter page by typing its code (as a USB scanner does) and sees the verdict."""

from __future__ import annotations

from datetime import timedelta

import pytest

from metropoints.core.db import commit_unit_of_work
from metropoints.kiosk.operations import create_kiosk
from metropoints.redemption.operations import redeem
from tests.conftest import SHOP_PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def sale(create_shop, create_rider):
    """A shop with a live campaign at its first store, featured at that store's station, and a rider's coupon."""
    from metropoints.accrual.ledger import post_entry
    from metropoints.accrual.models import EntryKind
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignFeature, CampaignStatus, CampaignStore
    from metropoints.core.db import db
    from metropoints.core.timeutil import utcnow
    from metropoints.marketplace.models import Category

    shop = create_shop()
    now = utcnow()
    campaign = Campaign(merchant_id=shop.merchant.id, status=CampaignStatus.approved, title="拿铁咖啡券",
                        category=Category.dining, benefit_type=BenefitType.free_item, point_price=120,
                        stock_total=20, stock_left=20, per_rider_limit=2, valid_from=now.replace(year=now.year - 1),
                        valid_until=now.replace(year=now.year + 1), coupon_valid_days=7)
    db.session.add(campaign)
    db.session.flush()
    db.session.add(CampaignStore(campaign_id=campaign.id, store_id=shop.store.id))
    db.session.add(CampaignFeature(campaign_id=campaign.id, station_id=shop.store.station_id,
                                   created_by=shop.owner.id))
    rider = create_rider(name="小林")
    post_entry(rider_id=rider.id, points=500, kind=EntryKind.adjustment, reason="test points")
    coupon = redeem(rider_id=rider.id, campaign_id=campaign.id)
    commit_unit_of_work()
    return shop, campaign, coupon


def test_kiosk_page_shows_the_feed(app, live_server, browser, artifacts, sale):
    """/kiosk#token=… reads the feed with the kiosk's token and shows the featured campaign and the catalogue."""
    shop, campaign, _ = sale
    _, token = create_kiosk(station_id=shop.store.station_id, label="test", actor_label="test")
    commit_unit_of_work()
    page = browser.new_page(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page.goto(f"{live_server}/kiosk#token={token}")
    page.wait_for_selector("#kiosk-grid li")
    assert campaign.title in page.inner_text("#kiosk-slides")
    assert campaign.title in page.inner_text("#kiosk-grid")
    assert "token=" not in page.url  # the token leaves the address bar
    page.screenshot(path=str(artifacts / "kiosk.png"))


def test_kiosk_page_shows_the_city_figures_by_mode(app, live_server, browser, create_rider, create_partner, sale):
    """The city's counter splits the CO2e and km by green mode, in Chinese by default and in English on request;
    a mode without trips is left out."""
    from metropoints.core.timeutil import utcnow
    from metropoints.kiosk.cache import drop_app_caches
    from tests.accrual.test_modes import bike
    from tests.helpers import noon_yesterday, post, trip

    shop, _, _ = sale
    create_rider(links=[("afc", "card-9"), ("bikeco", "card-9")])
    partner, _ = create_partner()
    end = min(noon_yesterday(), utcnow() - timedelta(hours=2))
    result = post(partner, [trip("m1", ref="card-9", exited_at=end),
                            bike("k1", ref="card-9", ended_at=end - timedelta(hours=1), distance_m=4000)])
    assert result.credited == 2
    with app.app_context():
        drop_app_caches()  # the feed and the city's figures are cached for a while; a kiosk drawn before shows them
    _, token = create_kiosk(station_id=shop.store.station_id, label="test", actor_label="test")
    commit_unit_of_work()
    page = browser.new_page(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page.goto(f"{live_server}/kiosk#token={token}")
    page.wait_for_selector("#kiosk-modes-rows tr")
    rows = page.locator("#kiosk-modes-rows tr")
    assert [rows.nth(i).get_attribute("data-mode") for i in range(rows.count())] == ["metro", "bike"]
    metro, bike_row = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert "地铁" in metro and "6 公里" in metro and "共享单车" in bike_row and "4 公里" in bike_row
    assert "按出行方式" in page.inner_text("#kiosk-modes")
    english = browser.new_page(viewport={"width": 1920, "height": 1080})
    english.goto(f"{live_server}/kiosk?lang=en#token={token}")
    english.wait_for_selector("#kiosk-modes-rows tr")
    assert "Shared bike" in english.inner_text("#kiosk-modes") and "4 km" in english.inner_text("#kiosk-modes")


def test_counter_page_accepts_then_refuses_a_used_coupon(app, live_server, browser, sale):
    """A cashier types the code and presses Enter: accepted; the same code again: already used."""
    shop, _, coupon = sale
    page = browser.new_page(locale="zh-CN")
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", shop.cashier.email)
    page.fill("input[name=password]", SHOP_PASSWORD)
    with page.expect_navigation():
        page.click("form.form button[type=submit]")
    page.goto(f"{live_server}/portal/counter")
    for expected in ("核销成功", "已使用"):
        page.fill("#counter-code", coupon.code)
        page.press("#counter-code", "Enter")
        page.wait_for_function("(text) => document.getElementById('counter-result').innerText.includes(text)",
                               arg=expected)
    assert page.evaluate("document.activeElement.id") == "counter-code"


def test_kiosk_and_counter_scripts_write_dates_as_the_pages_do(app, live_server, browser, sale):
    """The kiosk writes a campaign's end as YYYY-MM-DD (its Asia/Shanghai day) whatever the browser's locale would
    write, and the counter's script adds an accepted coupon to today's list with the time written YYYY-MM-DD HH:MM,
    as the page writes the rows it lists."""
    import re

    from metropoints.core.db import db
    from metropoints.core.templating import local_date
    from metropoints.redemption.models import Coupon
    from metropoints.redemption.operations import validate

    shop, campaign, coupon = sale
    rider_id = db.session.get(Coupon, coupon.coupon_id).rider_id
    second = redeem(rider_id=rider_id, campaign_id=campaign.id)
    validate(cashier=shop.cashier, code=coupon.code)  # today's list is on the page when it loads
    _, token = create_kiosk(station_id=shop.store.station_id, label="test", actor_label="test")
    commit_unit_of_work()
    page = browser.new_page(viewport={"width": 1920, "height": 1080}, locale="en-US")
    page.goto(f"{live_server}/kiosk#token={token}")
    page.wait_for_selector("#kiosk-grid li")
    stock_lines = page.locator(".kiosk-stock").all_inner_texts()
    assert stock_lines and all(line.endswith(local_date(campaign.valid_until)) for line in stock_lines), stock_lines

    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", shop.cashier.email)
    page.fill("input[name=password]", SHOP_PASSWORD)
    with page.expect_navigation():
        page.click("form.form button[type=submit]")
    page.goto(f"{live_server}/portal/counter")
    listed = page.locator("#counter-today tr td:first-child").all_inner_texts()
    page.fill("#counter-code", second.code)
    page.press("#counter-code", "Enter")
    page.wait_for_function("(n) => document.querySelectorAll('#counter-today tr').length > n", arg=len(listed))
    written = page.locator("#counter-today tr td:first-child").all_inner_texts()
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", text) for text in written), written
