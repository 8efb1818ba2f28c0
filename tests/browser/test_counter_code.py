"""In a real browser: an owner at the counter page types a coupon's 12-digit counter code, which the page writes
4-4-4 as it is typed, presses Enter and sees the verdict; a mistyped number is an unknown code."""

from __future__ import annotations

import pytest

from metropoints.core.db import commit_unit_of_work
from metropoints.redemption.codes import format_counter_code
from metropoints.redemption.operations import redeem
from tests.conftest import SHOP_PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def coupon(create_shop, create_rider):
    """A shop with a live campaign at its first store, and a rider's coupon of it: (shop, redemption)."""
    from metropoints.accrual.ledger import post_entry
    from metropoints.accrual.models import EntryKind
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus, CampaignStore
    from metropoints.core.db import db
    from metropoints.core.timeutil import utcnow
    from metropoints.marketplace.models import Category

    shop = create_shop()
    now = utcnow()
    campaign = Campaign(merchant_id=shop.merchant.id, status=CampaignStatus.approved, title="豆浆油条券",
                        category=Category.dining, benefit_type=BenefitType.free_item, point_price=80,
                        stock_total=20, stock_left=20, per_rider_limit=2, valid_from=now.replace(year=now.year - 1),
                        valid_until=now.replace(year=now.year + 1), coupon_valid_days=7)
    db.session.add(campaign)
    db.session.flush()
    db.session.add(CampaignStore(campaign_id=campaign.id, store_id=shop.store.id))
    rider = create_rider(name="小王")
    post_entry(rider_id=rider.id, points=500, kind=EntryKind.adjustment, reason="test points")
    bought = redeem(rider_id=rider.id, campaign_id=campaign.id)
    commit_unit_of_work()
    return shop, bought


def test_owner_types_a_counter_code(app, live_server, browser, artifacts, coupon):
    """The owner picks the store, types the 12 digits into the number field (written 4-4-4 while typing), presses
    Enter: accepted, the coupon listed today; a number with a wrong digit is an unknown code."""
    shop, bought = coupon
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", shop.owner.email)
    page.fill("input[name=password]", SHOP_PASSWORD)
    with page.expect_navigation():
        page.click("form.form button[type=submit]")
    page.goto(f"{live_server}/portal/counter?store_id={shop.store.id}")
    assert page.get_attribute("#counter-number", "inputmode") == "numeric"
    page.click("#counter-number")
    page.keyboard.type(bought.counter_code, delay=20)
    assert page.input_value("#counter-number") == format_counter_code(bought.counter_code)
    page.keyboard.type("99")  # a 13th digit is not taken
    assert page.input_value("#counter-number") == format_counter_code(bought.counter_code)
    page.screenshot(path=str(artifacts / "counter-code-typed.png"))
    page.press("#counter-number", "Enter")
    page.wait_for_function("() => document.getElementById('counter-result').innerText.includes('核销成功')")
    assert "豆浆油条券" in page.inner_text("#counter-result")
    assert page.input_value("#counter-number") == "" and page.evaluate("document.activeElement.id") == "counter-number"
    page.screenshot(path=str(artifacts / "counter-code-accepted.png"))

    code = bought.counter_code
    typo = code[:5] + str((int(code[5]) + 1) % 10) + code[6:]
    page.keyboard.type(typo)
    page.press("#counter-number", "Enter")
    page.wait_for_function("() => document.getElementById('counter-result').classList.contains('bad')")
    assert "核销成功" not in page.inner_text("#counter-result")
