"""End to end in a real browser: a merchant applies, is approved, creates a campaign, it is approved and sold."""

from __future__ import annotations

from datetime import timedelta

import pytest

from metropoints.core.db import commit_unit_of_work
from metropoints.core.models import Role
from metropoints.core.operations import create_user
from metropoints.core.timeutil import SERVICE_OFFSET, utcnow

pytestmark = pytest.mark.browser
OPERATOR = ("ops@metro.example", "operator-pass")
OWNER = ("owner@noodles.example", "owner-pass-1")


def submit(page, selector: str) -> None:
    """Click a button that posts a form, and wait until the page it leads to has loaded."""
    with page.expect_navigation():
        page.click(selector)


def log_in(page, base: str, email: str, password: str) -> None:
    """Log in through the portal's login form."""
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    submit(page, "form.form button[type=submit]")


def log_out(page) -> None:
    """Log out with the header's button."""
    submit(page, "form[action$='/logout'] button")


def local_input(moment) -> str:
    """A datetime-local value in Asia/Shanghai."""
    return moment.astimezone(SERVICE_OFFSET).strftime("%Y-%m-%dT%H:%M")


def test_apply_approve_campaign_review_catalogue(app, live_server, browser, artifacts):
    """apply -> approve -> create campaign -> submit -> approve -> visible in the catalogue, all through pages."""
    create_user(email=OPERATOR[0], password=OPERATOR[1], role=Role.operator)
    commit_unit_of_work()
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    base = live_server

    page.goto(f"{base}/portal/apply")
    page.fill("input[name=name]", "老边饺子 Laobian Dumplings")
    page.select_option("select[name=category]", "dining")
    page.fill("input[name=contact_name]", "边经理")
    page.fill("input[name=contact_phone]", "13912345678")
    page.fill("input[name=licence_no]", "91210100MA0XYZ1234")
    page.fill("input[name=email]", OWNER[0])
    page.fill("input[name=password]", OWNER[1])
    submit(page, "form button[type=submit]")
    assert page.url.endswith("/portal/apply/thanks")

    log_in(page, base, *OPERATOR)
    page.goto(f"{base}/portal/backoffice/merchants")
    submit(page, "text=Laobian Dumplings")
    submit(page, "button.mp-approve")
    log_out(page)

    log_in(page, base, *OWNER)
    page.goto(f"{base}/portal/stores/new")
    page.fill("input[name=name]", "中街店")
    page.fill("input[name=address]", "沈河区中街路 100 号")
    page.select_option("select[name=station_id]", "0119")
    submit(page, "form.form button[type=submit]")
    assert page.url.endswith("/portal/stores")

    page.goto(f"{base}/portal/campaigns/new")
    now = utcnow()
    page.fill("input[name=title]", "满50减20 饺子券")
    page.select_option("select[name=category]", "dining")
    page.select_option("select[name=benefit_type]", "voucher")
    page.fill("input[name=face_value_yuan]", "20")
    page.fill("input[name=point_price]", "200")
    page.fill("input[name=stock_total]", "50")
    page.fill("input[name=per_rider_limit]", "1")
    page.fill("input[name=valid_from]", local_input(now - timedelta(hours=1)))
    page.fill("input[name=valid_until]", local_input(now + timedelta(days=30)))
    page.fill("input[name=coupon_valid_days]", "14")
    page.check("input[name=store_ids]")
    submit(page, "form.form button[type=submit]")
    submit(page, "form[action$='/submit'] button")
    log_out(page)

    log_in(page, base, *OPERATOR)
    page.goto(f"{base}/portal/campaigns/review")
    submit(page, "text=满50减20 饺子券")
    page.check("input[name=decision][value=approve]")
    submit(page, "form.form button[type=submit]")

    catalogue = page.request.get(f"{base}/api/v1/catalog").json()
    assert [item["title"] for item in catalogue["items"]] == ["满50减20 饺子券"]
    item = catalogue["items"][0]
    assert item["point_price"] == 200 and item["stock_left"] == 50
    assert item["merchant"]["name"] == "老边饺子 Laobian Dumplings"
    assert item["stores"][0]["station_id"] == "0119"

    page.goto(f"{base}/backoffice/")
    page.screenshot(path=str(artifacts / "kpi.png"), full_page=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{base}/backoffice/")
    phone.screenshot(path=str(artifacts / "kpi-phone.png"), full_page=True)
    assert (artifacts / "kpi.png").stat().st_size > 10_000
