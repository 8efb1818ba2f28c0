"""The back office's merchant page: the application and decision, its stores, and through the panel registry its
campaigns (status, stock), statements and receivables (with links), and coupon figures."""

from __future__ import annotations

import re
from datetime import date, timedelta

from metropoints.campaigns.models import CampaignStatus
from metropoints.core.panels import registered
from metropoints.core.timeutil import utcnow
from metropoints.redemption.models import CouponStatus
from metropoints.settlement.models import StatementStatus
from tests.marketplace.conftest import login, page


def test_every_package_puts_its_panel_on_the_merchant_page(app):
    """The operator's merchant page shows campaigns', settlement's and redemption's panels, in that order."""
    assert registered("operator_merchant") == [
        "metropoints.campaigns.panels.operator_merchant_panel", "metropoints.settlement.panels.operator_merchant_panel",
        "metropoints.redemption.panels.operator_merchant_panel"]


def test_operator_sees_stores_campaigns_statements_and_coupons(client, create_operator, create_shop,
                                                                create_campaign_row, create_coupon, create_statement):
    """The page lists the merchant's stores, each campaign with its state as the portal names it and its stock, the
    receivables (open, overdue, paid totals in yuan) with each statement linking to its back-office page, and the
    coupons bought and used in the window; another merchant's appear nowhere."""
    shop, other = create_shop(), create_shop()
    live = create_campaign_row(shop, title="Laobian dumplings", stock_left=7, stock_total=20)
    create_campaign_row(shop, title="Draft noodles", status=CampaignStatus.draft)
    create_campaign_row(shop, title="Sold-out tea", stock_left=0)
    create_campaign_row(other, title="Someone else's cake")
    create_coupon(live, status=CouponStatus.used, store=shop.store)
    create_coupon(live)
    owed = create_statement(shop.merchant, date(2026, 1, 1), total_fen=123456, invoice_number="INV-0001")
    create_statement(shop.merchant, date(2026, 2, 1), total_fen=500, due_at=utcnow() - timedelta(days=2))
    create_statement(shop.merchant, date(2025, 12, 1), total_fen=99, status=StatementStatus.paid)
    create_statement(other.merchant, date(2026, 1, 1), total_fen=888888)
    login(client, create_operator().email)

    html = page(client, f"/portal/backoffice/merchants/{shop.merchant.id}").get_data(as_text=True)
    assert shop.store.name in html and shop.other_store.name in html
    campaigns = dict(re.findall(r'<tr data-campaign-id="\d+">\s*<td><a [^>]*>([^<]*)</a></td>\s*'
                                r'<td data-field="state">\s*<span class="badge badge-(\w+)">', html))
    assert campaigns == {"Laobian dumplings": "live", "Draft noodles": "draft", "Sold-out tea": "sold_out"}
    assert "7 / 20" in html and "Someone else" not in html
    assert re.search(r'data-field="open">.*?¥1,234\.56', html, re.S)
    assert re.search(r'data-field="overdue">.*?¥5\.00', html, re.S)
    assert re.search(r'data-field="paid">.*?¥0\.99', html, re.S) and "¥8,888.88" not in html
    assert f'href="/backoffice/statements/{owed.id}">INV-0001</a>' in html
    assert 'data-figure="bought">2<' in html and 'data-figure="used">1<' in html
    assert html.count("<svg") == 3


def test_merchant_page_window_switch_keeps_the_merchant(client, create_operator, create_shop):
    """The page's 30/90-day switch links back to the same merchant's page."""
    shop = create_shop()
    login(client, create_operator().email)
    html = page(client, f"/portal/backoffice/merchants/{shop.merchant.id}?days=90").get_data(as_text=True)
    assert f'href="/portal/backoffice/merchants/{shop.merchant.id}?days=90" aria-current="page"' in html
    assert f'href="/portal/backoffice/merchants/{shop.merchant.id}?days=30"' in html


def test_an_applicant_has_empty_panels(client, create_operator, create_merchant):
    """A merchant still applying has no campaigns, statements or coupons: the panels say so, the decision stays."""
    from metropoints.marketplace.models import MerchantStatus

    merchant = create_merchant(status=MerchantStatus.applied)
    login(client, create_operator().email)
    reply = page(client, f"/portal/backoffice/merchants/{merchant.id}")
    html = reply.get_data(as_text=True)
    assert reply.status_code == 200 and "No campaigns yet." in html and "No statements yet." in html
    assert "button" in html and "mp-approve" in html and 'data-figure="bought">0<' in html
