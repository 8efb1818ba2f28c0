"""Changes to an approved campaign: stock goes up at once; what riders see goes through a reviewed revision while
the approved version stays live."""

from __future__ import annotations

import json
import threading

from sqlalchemy import select

from metropoints.campaigns.models import Campaign, CampaignRevision, RevisionStatus
from metropoints.core.db import db
from metropoints.core.models import AuditEntry
from tests.campaigns import form_data, page_text


def live_title(client, cid: int) -> str:
    """The title the catalogue shows."""
    return client.get(f"/api/v1/catalog/{cid}").get_json()["title"]


def edit_form(campaign, stores, **overrides) -> dict:
    """The editor's submission for an existing campaign, starting from its current values."""
    from metropoints.core.timeutil import SERVICE_ZONE

    values = {"title": campaign.title, "point_price": str(campaign.point_price),
              "per_rider_limit": str(campaign.per_rider_limit), "coupon_valid_days": str(campaign.coupon_valid_days),
              "face_value_yuan": str(campaign.face_value_fen / 100), "description": campaign.description,
              "terms": campaign.terms,
              "valid_from": campaign.valid_from.astimezone(SERVICE_ZONE).strftime("%Y-%m-%dT%H:%M"),
              "valid_until": campaign.valid_until.astimezone(SERVICE_ZONE).strftime("%Y-%m-%dT%H:%M")}
    return form_data(stores, **{**values, **overrides})


def test_stock_raise_applies_at_once(client, login, create_merchant, create_store, create_campaign):
    """Raising a live campaign's stock needs no review: total and left both go up by the amount, audited."""
    merchant, owner = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)], stock_total=10, stock_left=3)
    login(owner)
    assert client.post(f"/portal/campaigns/{campaign.id}/stock", data={"amount": "20"}).status_code == 302
    db.session.refresh(campaign)
    assert (campaign.stock_total, campaign.stock_left) == (30, 23)
    assert client.get(f"/api/v1/catalog/{campaign.id}").get_json()["stock_left"] == 23
    assert db.session.scalar(select(CampaignRevision.id)) is None
    assert db.session.scalar(select(AuditEntry.reason).where(AuditEntry.action == "campaign.stock.raise")) == "+20"
    for bad in ("0", "-5", "x"):
        client.post(f"/portal/campaigns/{campaign.id}/stock", data={"amount": bad})
    db.session.refresh(campaign)
    assert (campaign.stock_total, campaign.stock_left) == (30, 23)


def test_stock_raise_does_not_overwrite_concurrent_sales(app, create_merchant, create_store, create_campaign):
    """The raise is one UPDATE adding to the stored counters: a sale committed after the owner's page loaded the
    campaign is kept, not overwritten by a stale Python value."""
    from sqlalchemy import update

    from metropoints.campaigns.operations import raise_stock
    from metropoints.core.db import commit_unit_of_work

    merchant, owner = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)], stock_total=10, stock_left=10)
    assert campaign.stock_left == 10  # loaded into this session

    def sell_one() -> None:
        with app.app_context():
            db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                               .values(stock_left=Campaign.stock_left - 1))
            db.session.commit()

    seller = threading.Thread(target=sell_one)
    seller.start()
    seller.join()
    raise_stock(owner=owner, campaign=campaign, amount=5)
    commit_unit_of_work()
    db.session.refresh(campaign)
    assert (campaign.stock_total, campaign.stock_left) == (15, 14)


def test_title_and_price_change_goes_to_review(client, login, create_merchant, create_store, create_campaign,
                                               create_operator):
    """Editing a live campaign's title and price makes one pending revision (a second edit replaces it); the
    catalogue keeps the old version; the reviewer sees a diff with before and after; approval applies it."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    campaign = create_campaign(merchant, [store], title="Old latte", point_price=400)
    cid = campaign.id
    login(owner)
    assert client.post(f"/portal/campaigns/{cid}/edit",
                       data=edit_form(campaign, [store], title="New latte")).status_code == 302
    assert client.post(f"/portal/campaigns/{cid}/edit",
                       data=edit_form(campaign, [store], title="Newer latte", point_price="500")).status_code == 302
    revisions = db.session.scalars(select(CampaignRevision)).all()
    assert len(revisions) == 1 and revisions[0].status == RevisionStatus.pending
    assert json.loads(revisions[0].proposed_json)["title"] == "Newer latte"
    db.session.refresh(campaign)
    assert (campaign.title, campaign.point_price) == ("Old latte", 400)
    assert live_title(client, cid) == "Old latte"
    status, html = page_text(client, f"/portal/campaigns/{cid}/edit")
    assert status == 200 and 'value="Newer latte"' in html  # the owner goes on from the proposal

    operator = create_operator()
    login(operator)
    status, html = page_text(client, "/portal/campaigns/review")
    assert f"/portal/campaigns/review/revisions/{revisions[0].id}" in html
    status, html = page_text(client, f"/portal/campaigns/review/revisions/{revisions[0].id}")
    assert status == 200
    assert '<td class="before">Old latte</td><td class="after">Newer latte</td>' in html
    assert '<td class="before">400</td><td class="after">500</td>' in html
    assert "Per-rider limit" not in html  # unchanged fields are not in the diff
    reply = client.post(f"/portal/campaigns/review/revisions/{revisions[0].id}",
                        data={"decision": "approve", "reason": "Fine"})
    assert reply.status_code == 302
    assert live_title(client, cid) == "Newer latte"
    assert client.get(f"/api/v1/catalog/{cid}").get_json()["point_price"] == 500
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.revision.approve"))
    assert entry.actor_id == operator.id and entry.reason == "Fine" and entry.subject.startswith(f"campaign:{cid} ")


def test_rejected_revision_keeps_the_live_version(client, login, create_merchant, create_store, create_campaign,
                                                  create_operator):
    """Rejecting a revision needs a reason, keeps the approved version, and is audited with who and why."""
    merchant, owner = create_merchant()
    store, other_store = create_store(merchant), create_store(merchant, name="Airport kiosk")
    campaign = create_campaign(merchant, [store], title="Old latte")
    login(owner)
    client.post(f"/portal/campaigns/{campaign.id}/edit",
                data=edit_form(campaign, [store, other_store], title="Cheap latte"))
    revision = db.session.scalar(select(CampaignRevision))
    operator = create_operator()
    login(operator)
    status, html = page_text(client, f"/portal/campaigns/review/revisions/{revision.id}")
    assert status == 200 and "Airport kiosk" in html  # stores diffed by name
    assert client.post(f"/portal/campaigns/review/revisions/{revision.id}",
                       data={"decision": "reject", "reason": ""}).status_code == 422
    assert client.post(f"/portal/campaigns/review/revisions/{revision.id}",
                       data={"decision": "reject", "reason": "Misleading title"}).status_code == 302
    db.session.refresh(revision)
    assert revision.status == RevisionStatus.rejected and revision.decided_by == operator.id
    item = client.get(f"/api/v1/catalog/{campaign.id}").get_json()
    assert item["title"] == "Old latte" and [s["store_id"] for s in item["stores"]] == [store.id]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.revision.reject"))
    assert (entry.actor_id, entry.reason) == (operator.id, "Misleading title")
    # Deciding twice is refused.
    reply = client.post(f"/portal/campaigns/review/revisions/{revision.id}", data={"decision": "approve"})
    assert reply.status_code == 302 and live_title(client, campaign.id) == "Old latte"


def test_edit_back_to_the_live_version_withdraws_the_revision(client, login, create_merchant, create_store,
                                                               create_campaign):
    """An edit that equals the approved version leaves nothing to review."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    campaign = create_campaign(merchant, [store], title="Old latte")
    login(owner)
    client.post(f"/portal/campaigns/{campaign.id}/edit", data=edit_form(campaign, [store], title="New latte"))
    assert db.session.scalar(select(CampaignRevision.id)) is not None
    client.post(f"/portal/campaigns/{campaign.id}/edit", data=edit_form(campaign, [store]))
    db.session.expire_all()
    assert db.session.scalar(select(CampaignRevision.id)) is None


def shown_times(client, cid: int) -> dict[str, str]:
    """The sale times exactly as the editor page shows them: what a browser posts back when they are left alone."""
    import re

    _, html = page_text(client, f"/portal/campaigns/{cid}/edit")
    return {name: re.search(rf'name="{name}"[^>]*value="([^"]*)"', html).group(1)
            for name in ("valid_from", "valid_until")}


def test_untouched_times_with_seconds_are_no_change(client, login, create_merchant, create_store, create_campaign,
                                                     create_operator):
    """A live campaign whose sale times carry seconds (made by the demo data or a script; the editor works to the
    minute) keeps them when the owner saves other changes: the revision proposes the same instants, and the
    reviewer's diff shows neither start nor end; a time really changed is still in the diff, before and after."""
    from datetime import timedelta

    from metropoints.campaigns.queries import revision_diff
    from metropoints.core.timeutil import SERVICE_ZONE, utcnow

    merchant, owner = create_merchant()
    store = create_store(merchant)
    now = utcnow()
    start = (now - timedelta(days=1)).replace(second=37, microsecond=123456)
    end = (now + timedelta(days=30)).replace(second=5, microsecond=0)
    campaign = create_campaign(merchant, [store], title="Old latte", valid_from=start, valid_until=end)
    cid = campaign.id
    login(owner)
    shown = shown_times(client, cid)
    assert client.post(f"/portal/campaigns/{cid}/edit",
                       data=edit_form(campaign, [store], title="New latte", **shown)).status_code == 302
    revision = db.session.scalar(select(CampaignRevision))
    proposed = json.loads(revision.proposed_json)
    assert proposed["valid_from"] == json.loads(revision.previous_json)["valid_from"]
    assert proposed["valid_until"] == json.loads(revision.previous_json)["valid_until"]
    assert [str(row[0]) for row in revision_diff(revision)] == ["Title"]
    operator = create_operator()
    login(operator)
    status, html = page_text(client, f"/portal/campaigns/review/revisions/{revision.id}")
    assert status == 200 and '<td class="after">New latte</td>' in html
    assert "On sale from" not in html and "On sale until" not in html

    login(owner)
    later = (end + timedelta(days=1)).astimezone(SERVICE_ZONE)
    assert client.post(f"/portal/campaigns/{cid}/edit", data=edit_form(
        campaign, [store], title="New latte", **{**shown, "valid_until": later.strftime("%Y-%m-%dT%H:%M")})
    ).status_code == 302
    db.session.expire_all()
    revision = db.session.scalar(select(CampaignRevision))
    login(operator)
    status, html = page_text(client, f"/portal/campaigns/review/revisions/{revision.id}")
    before, after = end.astimezone(SERVICE_ZONE).strftime("%Y-%m-%d %H:%M"), later.strftime("%Y-%m-%d %H:%M")
    assert f'<th>On sale until</th><td class="before">{before}</td><td class="after">{after}</td>' in html
    assert "On sale from" not in html
    reply = client.post(f"/portal/campaigns/review/revisions/{revision.id}", data={"decision": "approve"})
    assert reply.status_code == 302
    db.session.refresh(campaign)
    assert campaign.valid_from == start and campaign.valid_until == later.replace(second=0)
