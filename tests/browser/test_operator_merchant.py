"""In a real browser: the owner's dashboard with its charts, and an operator who searches the merchant list and opens
a merchant's page with its campaigns, statements and coupons; on a desktop and on a 390 px phone."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from metropoints.campaigns.models import CampaignStatus
from metropoints.core.db import commit_unit_of_work
from metropoints.core.models import Role
from metropoints.core.operations import create_user
from metropoints.core.timeutil import utcnow
from metropoints.redemption.models import CouponStatus
from metropoints.settlement.models import StatementStatus
from tests.browser.test_portal_flow import log_in, submit
from tests.conftest import SHOP_PASSWORD
from tests.marketplace.conftest import create_campaign_row, create_coupon, create_statement  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser
OPERATOR = ("ops@metro.example", "operator-pass")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def busy_shop(app, create_shop, create_campaign_row, create_coupon, create_statement):  # noqa: F811
    """A shop with two months of coupons (bought most days, some used, one cancelled), three campaigns, statements
    owed, overdue and paid; two other shops; the operator's account."""
    create_user(email=OPERATOR[0], password=OPERATOR[1], role=Role.operator)
    commit_unit_of_work()
    shop = create_shop()
    create_shop(), create_shop()
    live = create_campaign_row(shop, title="老边饺子 满50减20", stock_left=37)
    create_campaign_row(shop, title="冬季面馆 免费小菜", stock_left=0)
    create_campaign_row(shop, title="春季新品 9折", status=CampaignStatus.submitted)
    for days_ago in range(0, 60, 2):
        for n in range(days_ago % 5 + 1):
            used = n % 2 == 0
            create_coupon(live, days_ago=days_ago, status=CouponStatus.used if used else CouponStatus.issued,
                          store=shop.store if used else None, used_days_ago=max(days_ago - 1, 0) if used else None)
    create_coupon(live, days_ago=3, status=CouponStatus.cancelled)
    create_statement(shop.merchant, date(2026, 10, 1), total_fen=123456, invoice_number="MP-2026-10-0001")
    create_statement(shop.merchant, date(2026, 9, 1), total_fen=4200, due_at=utcnow() - timedelta(days=3))
    create_statement(shop.merchant, date(2026, 8, 1), total_fen=98000, status=StatementStatus.paid)
    return shop


def fits(page, width: int) -> bool:
    """The page never scrolls sideways at this width (wide tables scroll inside their own box)."""
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_owner_dashboard_and_operator_merchant_page(live_server, browser, artifacts, busy_shop):
    """The owner lands on the dashboard: coupons bought, used, points taken and fees, each with a chart, the 90-day
    switch redraws them, the live campaigns listed; the operator searches the merchant list by the owner's e-mail,
    opens the one result and sees its stores, campaigns, statements (linked) and coupon figures; both pages fit a
    390 px phone."""
    shop, base = busy_shop, live_server
    for name, viewport, locale in (("desktop", DESKTOP, "en-US"), ("phone", PHONE, "zh-CN")):
        context = browser.new_context(viewport=viewport, locale=locale)
        page = context.new_page()
        log_in(page, base, shop.owner.email, SHOP_PASSWORD)
        page.goto(f"{base}/portal")
        assert page.locator("svg.chart").count() == 4
        assert page.locator("[data-figure=bought]").inner_text() != "0"
        assert page.locator("#owner-live-campaigns").inner_text().count("老边饺子") == 1
        page.screenshot(path=str(artifacts / f"owner-dashboard-{name}.png"), full_page=True)
        assert fits(page, viewport["width"])
        thirty = page.locator("[data-figure=bought]").inner_text()
        submit(page, "nav.window-switch a[href$='days=90']")
        assert int(page.locator("[data-figure=bought]").inner_text().replace(",", "")) > int(thirty.replace(",", ""))
        context.close()

    for name, viewport, locale in (("desktop", DESKTOP, "en-US"), ("phone", PHONE, "zh-CN")):
        context = browser.new_context(viewport=viewport, locale=locale)
        page = context.new_page()
        log_in(page, base, *OPERATOR)
        page.goto(f"{base}/portal/backoffice/merchants")
        assert page.locator("tr[data-merchant-id]").count() == 3
        page.fill("input[name=q]", shop.owner.email.upper())
        submit(page, "form.mp-search button[type=submit]")
        assert page.locator("tr[data-merchant-id]").count() == 1
        page.screenshot(path=str(artifacts / f"operator-merchant-list-{name}.png"), full_page=True)
        submit(page, f"tr[data-merchant-id='{shop.merchant.id}'] a")
        assert page.url.endswith(f"/portal/backoffice/merchants/{shop.merchant.id}")
        assert page.locator("#merchant-campaigns tr[data-campaign-id]").count() == 3
        assert page.locator("#merchant-receivables tr[data-statement-id]").count() == 3
        assert page.locator("#merchant-receivables a", has_text="MP-2026-10-0001").count() == 1
        assert page.locator("#merchant-coupons svg.chart").count() == 3
        assert shop.store.name in page.content()
        page.screenshot(path=str(artifacts / f"operator-merchant-{name}.png"), full_page=True)
        assert fits(page, viewport["width"])
        context.close()
