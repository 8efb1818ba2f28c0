"""On a 390 px phone, in Chinese, the pages with long tables fit the screen: the page itself never scrolls sideways
(a table may scroll inside its own box)."""

from __future__ import annotations

import pytest

from tests.core.test_zh_pages import PASSWORD, build_world

pytestmark = pytest.mark.browser
WIDTH = 390
PAGES = {
    "operator": ["/portal/backoffice/merchants", "/portal/backoffice/merchants/{merchant_id}", "/backoffice/audit",
                 "/backoffice/receivables", "/backoffice/fees", "/backoffice/mail", "/backoffice/rules", "/backoffice/",
                 "/portal/campaigns/review", "/portal/campaigns/review/revisions/{revision_id}",
                 "/backoffice/statements/{statement_id}"],
    "merchant_owner": ["/", "/portal", "/portal/campaigns/", "/portal/campaigns/{campaign_id}", "/portal/statements",
                       "/portal/statements/{statement_id}", "/portal/activity", "/portal/stores", "/portal/staff"],
    "cashier": ["/portal/counter"],
}


def test_table_pages_fit_a_390px_phone(app, live_server, browser, artifacts):
    """document.documentElement.scrollWidth <= 390 on the merchant list, campaigns, statements, audit log,
    activity and the other table pages, for the operator and the merchant owner."""
    world = build_world(app)
    ids = {**world.by_argument, "revision_id": world.fillers["campaigns.review_revision"][0]["revision_id"]}
    too_wide = []
    for role, paths in PAGES.items():
        context = browser.new_context(viewport={"width": WIDTH, "height": 844}, locale="zh-CN",
                                      device_scale_factor=1)
        page = context.new_page()
        page.goto(f"{live_server}/login")
        page.fill("input[name=email]", world.users[role].email)
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.click("form.form button[type=submit]")
        for path in (template.format(**ids) for template in paths):
            reply = page.goto(live_server + path)
            assert reply is not None and reply.status < 400, (path, reply and reply.status)
            width = page.evaluate("document.documentElement.scrollWidth")
            name = path.strip("/").replace("/", "-") or "home"
            page.screenshot(path=str(artifacts / f"phone-{role}-{name}.png"), full_page=True)
            if width > WIDTH:
                too_wide.append(f"{role} {path}: {width}px")
        context.close()
    assert not too_wide, too_wide
