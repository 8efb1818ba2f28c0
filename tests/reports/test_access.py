"""The back office's report pages are for operators only, and appear in their navigation."""

from __future__ import annotations

import pytest

from metropoints.core.models import Role

PAGES = ["/backoffice/", "/backoffice/rules", "/backoffice/audit"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_login(client, path):
    """A visitor without a session is redirected to the login page, with the page to come back to."""
    reply = client.get(path)
    assert reply.status_code == 302
    assert reply.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("role", [Role.merchant_owner, Role.cashier])
@pytest.mark.parametrize("path", PAGES)
def test_merchant_staff_are_refused(client, create_portal_user, login, role, path):
    """A merchant owner or a cashier gets 403 on every report page."""
    login(create_portal_user(role))
    assert client.get(path).status_code == 403


def test_merchant_staff_cannot_add_rule_versions(client, create_portal_user, login):
    """Posting the rule form as a merchant owner is refused (403) and adds nothing."""
    from sqlalchemy import func, select

    from metropoints.accrual.models import RuleVersion
    from metropoints.core.db import db

    login(create_portal_user(Role.merchant_owner))
    reply = client.post("/backoffice/rules", data={"points_per_km": "5", "daily_cap": "500", "co2e_factor": "44",
                                                   "factor_name": "x", "note": "y"})
    assert reply.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(RuleVersion)) == 1


@pytest.mark.parametrize("path", PAGES)
def test_operators_see_the_pages(operator, get_en, path):
    """An operator gets each page (200)."""
    assert get_en(path).status_code == 200


def test_navigation_lists_the_report_pages_for_operators_only(client, create_portal_user, login, get_en):
    """Operators' navigation links KPIs, Accrual rules and Audit log, in that order; a merchant owner sees none."""
    login(create_portal_user(Role.operator))
    html = get_en("/").get_data(as_text=True)
    positions = [html.index(f'href="{path}"') for path in PAGES]
    assert positions == sorted(positions)
    assert ">KPIs<" in html and ">Accrual rules<" in html and ">Audit log<" in html
    client.post("/logout")
    login(create_portal_user(Role.merchant_owner))
    html = get_en("/").get_data(as_text=True)
    assert not any(f'href="{path}"' in html for path in PAGES)
