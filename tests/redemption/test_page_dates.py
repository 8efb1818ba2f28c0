"""Pages write dates one way: a day as YYYY-MM-DD and a moment as YYYY-MM-DD HH:MM in Asia/Shanghai, in every
language; never a locale's own way (2026/12/2, 12/2/26)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask_babel import refresh
from sqlalchemy import select

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.templating import local_date, local_datetime
from metropoints.core.timeutil import SERVICE_ZONE, utcnow

# A date with slashes, day or month or year first: 2026/12/2, 2/12/2026, 12/2/26.
SLASHED_DATE = re.compile(r"(?<![\w/.])\d{1,4}/\d{1,2}/\d{1,4}(?![\w/])")


def local(moment: datetime) -> str:
    """A moment as the pages write it, computed here independently of the app."""
    return moment.astimezone(SERVICE_ZONE).strftime("%Y-%m-%d %H:%M")


def test_the_filters_write_days_and_moments_in_shanghai():
    """local_date writes a day as YYYY-MM-DD (a moment as its Asia/Shanghai day); local_datetime writes a moment as
    YYYY-MM-DD HH:MM in Asia/Shanghai, whatever zone it comes in (HH:MM:SS when asked); both write "" for none."""
    late = datetime(2026, 12, 1, 16, 30, 59, tzinfo=UTC)  # 00:30 on 2 December in Shenyang
    assert local_datetime(late) == "2026-12-02 00:30"
    assert local_datetime(late.astimezone(SERVICE_ZONE)) == "2026-12-02 00:30"
    assert local_date(late) == "2026-12-02" and local_date(date(2026, 3, 4)) == "2026-03-04"
    assert local_datetime(late, seconds=True) == "2026-12-02 00:30:59"  # the back office's logs
    assert local_date(None) == local_datetime(None) == ""


@pytest.fixture
def dated_world(create_shop, create_campaign, create_riders, create_operator):
    """A shop with a live campaign, a coupon used last month (on a statement, issued, due and paid) and one used
    today, a submitted campaign and a pending revision to review, audit entries; returns what the pages show."""
    from metropoints.campaigns.models import CampaignStatus
    from metropoints.campaigns.operations import approve_campaign, update_campaign
    from metropoints.campaigns.queries import snapshot
    from metropoints.redemption import operations as redemption
    from metropoints.settlement import operations as settlement
    from metropoints.settlement import periods
    from metropoints.settlement.models import Statement, StatementStatus

    shop = create_shop()
    operator = create_operator()
    period = periods.previous_period()
    start = periods.period_start(period)
    campaign = create_campaign(shop, per_rider_limit=5, valid_from=start - timedelta(days=1))
    submitted = create_campaign(shop, status=CampaignStatus.submitted, title="Waiting")
    to_approve = create_campaign(shop, status=CampaignStatus.submitted, title="Approve me")
    rider = create_riders(points=10_000)[0]
    before = redemption.redeem(rider_id=rider.id, campaign_id=campaign.id, now=start + timedelta(days=2))
    redemption.validate(cashier=shop.cashier, code=before.code, now=start + timedelta(days=2, hours=3))
    today = redemption.redeem(rider_id=rider.id, campaign_id=campaign.id)
    redemption.validate(cashier=shop.cashier, code=today.code)
    commit_unit_of_work()
    settlement.run_period(period)
    commit_unit_of_work()
    statement = db.session.scalar(select(Statement).where(Statement.merchant_id == shop.merchant.id))
    now = utcnow()
    statement.status, statement.issued_at = StatementStatus.paid, now - timedelta(days=3)
    statement.due_at, statement.paid_at = now + timedelta(days=12), now - timedelta(days=1)
    from flask import current_app

    with current_app.test_request_context():  # the operations' refusals would be lazy translations
        approve_campaign(operator=operator, campaign=to_approve, reason="fine")
        revision = update_campaign(owner=shop.owner, campaign=campaign,
                                   data={**snapshot(campaign), "title": "Renamed", "valid_from": campaign.valid_from,
                                         "valid_until": campaign.valid_until + timedelta(days=1)})
    commit_unit_of_work()
    db.session.expire_all()
    return {"shop": shop, "operator": operator, "campaign": campaign, "submitted": submitted, "revision": revision,
            "statement": statement, "today_coupon": today.coupon_id}


def test_no_page_writes_a_date_with_slashes(client, login, dated_world):
    """The owner's campaign list and detail, statements (list, detail, printable), activity and account pages, the
    counter's today list, and the back office's review, merchants, audit log, receivables, statement, rules, mail
    and KPI pages write no date with slashes, in English or Chinese, and write moments as YYYY-MM-DD HH:MM (the audit
    log to the second)."""
    from metropoints.redemption.models import Coupon

    shop, operator, campaign = dated_world["shop"], dated_world["operator"], dated_world["campaign"]
    statement, revision = dated_world["statement"], dated_world["revision"]
    used_today = db.session.get(Coupon, dated_world["today_coupon"]).used_at
    pages = {
        shop.owner: {
            "/portal/campaigns/": [],
            f"/portal/campaigns/{campaign.id}": [local(campaign.valid_from), local(campaign.valid_until)],
            "/portal/activity": [],
            "/portal/statements": [local(statement.due_at)],
            f"/portal/statements/{statement.id}": [local(statement.issued_at), local(statement.paid_at)],
            f"/portal/statements/{statement.id}/print": [local(statement.due_at)],
            f"/portal/counter?store_id={shop.store.id}": [local(used_today)],
            "/account": [],
        },
        shop.cashier: {"/portal/counter": [local(used_today)]},
        operator: {
            "/portal/campaigns/review": [local(revision.created_at)],
            f"/portal/campaigns/review/{dated_world['submitted'].id}": [],
            f"/portal/campaigns/review/revisions/{revision.id}": [local(revision.created_at)],
            f"/portal/campaigns/review/{campaign.id}": [],
            "/portal/backoffice/merchants": [local(shop.merchant.applied_at)],
            f"/portal/backoffice/merchants/{shop.merchant.id}": [local(shop.merchant.applied_at)],
            "/backoffice/audit": [],
            "/backoffice/receivables?state=all": [],
            f"/backoffice/statements/{statement.id}": [local(statement.due_at)],
            "/backoffice/rules": [],
            "/backoffice/mail": [],
            "/backoffice/": [],
        },
    }
    for user, paths in pages.items():
        login(user)
        for path, expected in paths.items():
            for language in ("en", "zh"):
                refresh()  # the test's app context outlives requests: drop the last request's language
                reply = client.get(path, headers={"Accept-Language": language})
                html = reply.get_data(as_text=True)
                assert reply.status_code == 200, (path, language)
                assert SLASHED_DATE.findall(html) == [], (path, language, SLASHED_DATE.findall(html))
                for text in expected:
                    assert text in html, (path, language, text)
    refresh()
    login(operator)
    audit = client.get("/backoffice/audit").get_data(as_text=True)
    written = re.findall(r'<time datetime="[^"]+">([^<]+)</time>', audit)
    assert written and all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text) for text in written), written


def test_counter_replies_write_the_time_as_the_page_does(client, login, create_shop, create_campaign,
                                                         create_riders):
    """The counter page's script adds an accepted coupon to today's list with the time the server wrote
    (`validated_at_local`, YYYY-MM-DD HH:MM in Asia/Shanghai), the same way the page lists the others."""
    from metropoints.redemption.models import Coupon
    from metropoints.redemption.operations import redeem

    shop = create_shop()
    campaign = create_campaign(shop)
    bought = redeem(rider_id=create_riders()[0].id, campaign_id=campaign.id)
    commit_unit_of_work()
    login(shop.cashier)
    reply = client.post("/portal/counter/validate", json={"code": bought.code})
    assert reply.status_code == 200
    db.session.expire_all()
    used_at = db.session.get(Coupon, bought.coupon_id).used_at
    assert reply.get_json()["validated_at_local"] == local(used_at)
    again = client.post("/portal/counter/validate", json={"code": bought.code}).get_json()
    assert again["used_at_local"] == local(used_at) and again["used_at"].endswith("+08:00")
