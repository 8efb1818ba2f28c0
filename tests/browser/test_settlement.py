"""End to end in a real browser: a merchant owner opens last month's statement, follows the payment provider's
link (localstripe's hosted invoice page), pays with a test card, and the signed webhook marks the statement paid."""

from __future__ import annotations

import time
from datetime import date

import pytest
import requests

from metropoints.core.db import commit_unit_of_work
from metropoints.settlement import operations
from tests.browser.test_portal_flow import log_in, submit
from tests.conftest import SHOP_PASSWORD
from tests.redemption.conftest import create_campaign, create_riders  # noqa: F401  (fixtures)
from tests.settlement.conftest import (  # noqa: F401  (fixtures)
    AFTER_OCTOBER,
    WEBHOOK_SECRET,
    localstripe,
    localstripe_server,
    month_of_coupons,
    provider_app,
)

pytestmark = pytest.mark.browser


def test_owner_pays_a_statement_at_the_provider(provider_app, localstripe, live_server, browser, artifacts,  # noqa: F811
                                                create_shop, month_of_coupons):  # noqa: F811
    requests.post(f"{localstripe.url}/_config/webhooks/metropoints", timeout=5,
                  data={"url": f"{live_server}/api/v1/webhooks/payments", "secret": WEBHOOK_SECRET}).raise_for_status()
    shop = create_shop()
    month_of_coupons(shop, 3)
    (statement_id,) = operations.run_period(date(2026, 10, 1), now=AFTER_OCTOBER).created
    commit_unit_of_work()
    try:
        page = browser.new_page(locale="en-US")
        log_in(page, live_server, shop.owner.email, SHOP_PASSWORD)
        page.goto(f"{live_server}/portal/statements/{statement_id}")
        assert page.inner_text("[data-field=total]") == "¥6.00"
        assert page.locator(".statement-lines tbody tr").count() == 3
        page.screenshot(path=str(artifacts / "settlement-statement.png"), full_page=True)
        with page.expect_navigation():
            page.click("a.pay")
        assert page.url.startswith(localstripe.url) and "6.00 CNY" in page.inner_text("body")
        submit(page, "button[value='4242424242424242']")
        assert page.inner_text("#status") == "paid"
        deadline = time.monotonic() + 15
        while True:
            page.goto(f"{live_server}/portal/statements")
            if page.inner_text(f"[data-statement-id='{statement_id}'] [data-field=status]") == "Paid":
                break
            assert time.monotonic() < deadline, "the webhook did not mark the statement paid"
            time.sleep(0.5)
        page.screenshot(path=str(artifacts / "settlement-paid.png"), full_page=True)
    finally:
        requests.post(f"{localstripe.url}/_config/webhooks/metropoints", timeout=5,
                      data={"url": "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET})
