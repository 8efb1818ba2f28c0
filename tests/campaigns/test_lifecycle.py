"""The lifecycle through the portal: draft → submitted (locked) → rejected with a reason → edited → resubmitted →
approved → on sale → paused → resumed → ended; every decision in the audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from metropoints.campaigns.models import Campaign, CampaignStatus
from metropoints.core.db import db
from metropoints.core.models import AuditEntry
from tests.campaigns import form_data, page_text

CONTRACT_FIELDS = ["campaign_id", "merchant", "title", "category", "point_price", "stock_left", "per_rider_limit",
                   "valid_from", "valid_until", "stores"]


def catalog_ids(client) -> list[int]:
    """The ids of the live catalogue's first page."""
    reply = client.get("/api/v1/catalog")
    assert reply.status_code == 200
    return [item["campaign_id"] for item in reply.get_json()["items"]]


def test_full_lifecycle(client, login, create_merchant, create_store, create_operator):
    """Each step of the lifecycle through the pages, with editing locked under review, a rejection reason the owner
    sees, and the catalogue showing the campaign only while approved and on sale."""
    merchant, owner = create_merchant(name="Green Bean Café")
    store = create_store(merchant, name="Zhongjie branch")
    operator = create_operator()
    login(owner)
    assert client.post("/portal/campaigns/new", data=form_data([store])).status_code == 302
    campaign = db.session.scalar(select(Campaign))
    cid = campaign.id
    assert client.post(f"/portal/campaigns/{cid}/submit").status_code == 302
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.submitted and campaign.submitted_at is not None

    status, html = page_text(client, f"/portal/campaigns/{cid}/edit")
    assert status == 409 and "under review" in html
    assert client.post(f"/portal/campaigns/{cid}/edit", data=form_data([store], title="Sneaky")).status_code == 409
    assert catalog_ids(client) == []

    login(operator)
    status, html = page_text(client, "/portal/campaigns/review")
    assert status == 200 and "Latte voucher" in html
    status, html = page_text(client, f"/portal/campaigns/review/{cid}", "post", data={"decision": "reject"})
    assert status == 422 and "Please give a reason." in html
    reply = client.post(f"/portal/campaigns/review/{cid}", data={"decision": "reject", "reason": "Terms too vague"})
    assert reply.status_code == 302
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.rejected and campaign.decision_reason == "Terms too vague"

    login(owner)
    status, html = page_text(client, f"/portal/campaigns/{cid}")
    assert status == 200 and "Terms too vague" in html
    edited = form_data([store], terms="One per visit, not with other offers.")
    assert client.post(f"/portal/campaigns/{cid}/edit", data=edited).status_code == 302
    assert client.post(f"/portal/campaigns/{cid}/submit").status_code == 302
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.submitted and campaign.terms.startswith("One per visit, not")

    login(operator)
    reply = client.post(f"/portal/campaigns/review/{cid}", data={"decision": "approve", "reason": "Clear now"})
    assert reply.status_code == 302
    item = client.get(f"/api/v1/catalog/{cid}").get_json()
    assert list(item)[:len(CONTRACT_FIELDS)] == CONTRACT_FIELDS
    assert item["merchant"] == {"merchant_id": merchant.id, "name": "Green Bean Café"}
    assert item["stores"] == [{"store_id": store.id, "name": "Zhongjie branch", "address": store.address,
                               "station_id": store.station_id}]
    assert (item["point_price"], item["stock_left"], item["per_rider_limit"]) == (400, 50, 1)
    assert item["valid_from"].endswith("+08:00") and item["category"] == "dining"
    assert catalog_ids(client) == [cid]

    login(owner)
    assert client.post(f"/portal/campaigns/{cid}/pause").status_code == 302
    assert catalog_ids(client) == [] and client.get(f"/api/v1/catalog/{cid}").status_code == 404
    assert client.post(f"/portal/campaigns/{cid}/resume").status_code == 302
    assert catalog_ids(client) == [cid]
    assert client.post(f"/portal/campaigns/{cid}/end").status_code == 302
    assert catalog_ids(client) == []
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.ended
    assert client.get(f"/portal/campaigns/{cid}/edit").status_code == 409

    entries = db.session.execute(select(AuditEntry.action, AuditEntry.actor_id, AuditEntry.reason)
                                 .where(AuditEntry.subject == f"campaign:{cid}").order_by(AuditEntry.id)).all()
    assert [tuple(e) for e in entries] == [
        ("campaign.reject", operator.id, "Terms too vague"), ("campaign.approve", operator.id, "Clear now"),
        ("campaign.pause", owner.id, ""), ("campaign.resume", owner.id, ""), ("campaign.end", owner.id, "")]


def test_illegal_transitions_are_flashed_not_done(client, login, create_merchant, create_store, create_campaign,
                                                  create_operator):
    """Pausing a draft, resuming an approved campaign or approving one not submitted is refused with a message;
    the status does not change."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    draft = create_campaign(merchant, [store], status=CampaignStatus.draft)
    live = create_campaign(merchant, [store])
    login(owner)
    for cid, action in ((draft.id, "pause"), (draft.id, "end"), (live.id, "resume"), (live.id, "submit")):
        status, html = page_text(client, f"/portal/campaigns/{cid}/{action}", "post", follow_redirects=True)
        assert status == 200 and "cannot make that change" in html, (cid, action)
    login(create_operator())
    reply = client.post(f"/portal/campaigns/review/{draft.id}", data={"decision": "approve"})
    assert reply.status_code == 302
    db.session.refresh(draft)
    db.session.refresh(live)
    assert (draft.status, live.status) == (CampaignStatus.draft, CampaignStatus.approved)
    assert db.session.scalar(select(AuditEntry.id)) is None


def test_suspended_merchant_cannot_submit(client, login, create_merchant, create_store, create_campaign):
    """A suspended merchant's owner is locked out of the campaign pages (403): nothing goes to review."""
    from metropoints.marketplace.models import MerchantStatus

    merchant, owner = create_merchant(status=MerchantStatus.suspended)
    draft = create_campaign(merchant, [create_store(merchant)], status=CampaignStatus.draft)
    login(owner)
    status, html = page_text(client, f"/portal/campaigns/{draft.id}/submit", "post", follow_redirects=True)
    assert status == 403 and "its portal is locked" in html
    assert client.get(f"/portal/campaigns/{draft.id}").status_code == 403
    db.session.refresh(draft)
    assert draft.status == CampaignStatus.draft


def test_owner_list_shows_derived_badges(client, login, create_merchant, create_store, create_campaign):
    """The owner's list shows "Live" and "Sold out" as badges derived from window and stock."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    create_campaign(merchant, [store], title="Still selling")
    create_campaign(merchant, [store], title="All gone", stock_total=5, stock_left=0)
    login(owner)
    status, html = page_text(client, "/portal/campaigns/")
    assert status == 200 and "badge-live" in html and "badge-sold_out" in html and "Sold out" in html


def test_a_sale_over_by_now_is_neither_submitted_nor_approved(client, login, create_merchant, create_store,
                                                               create_campaign, create_operator):
    """A draft whose sale ended while it waited is refused at submit, and a submitted campaign whose sale ended under
    review is refused at approval: each time the page flashes why (the end of the sale) and the status stays;
    nothing is audited. Rejecting such a campaign is still possible."""
    from datetime import timedelta

    from metropoints.core.timeutil import utcnow

    merchant, owner = create_merchant()
    store = create_store(merchant)
    now = utcnow()
    window = {"valid_from": now - timedelta(days=10), "valid_until": now - timedelta(seconds=1)}
    draft = create_campaign(merchant, [store], status=CampaignStatus.draft, **window)
    submitted = create_campaign(merchant, [store], status=CampaignStatus.submitted, **window)
    message = "The sale would already be over: choose an end in the future."
    login(owner)
    status, html = page_text(client, f"/portal/campaigns/{draft.id}/submit", "post", follow_redirects=True)
    assert status == 200 and message in html
    login(create_operator())
    status, html = page_text(client, f"/portal/campaigns/review/{submitted.id}", "post",
                             data={"decision": "approve"}, follow_redirects=True)
    assert status == 200 and message in html
    db.session.expire_all()
    assert (db.session.get(Campaign, draft.id).status, db.session.get(Campaign, submitted.id).status) == (
        CampaignStatus.draft, CampaignStatus.submitted)
    assert db.session.scalar(select(AuditEntry.id)) is None
    assert client.post(f"/portal/campaigns/review/{submitted.id}",
                       data={"decision": "reject", "reason": "The sale is over"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Campaign, submitted.id).status == CampaignStatus.rejected


def test_a_revision_whose_sale_is_over_is_not_approved(app, create_merchant, create_store, create_campaign,
                                                       create_operator):
    """A pending revision whose proposed end has passed since it was saved is refused at approval on `valid_until`;
    the live version stays and the revision stays pending."""
    import json
    from datetime import timedelta

    import pytest

    from metropoints.campaigns.errors import InvalidCampaign
    from metropoints.campaigns.models import CampaignRevision, RevisionStatus
    from metropoints.campaigns.operations import approve_revision, update_campaign
    from metropoints.campaigns.queries import snapshot
    from metropoints.core.db import commit_unit_of_work

    merchant, owner = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)], title="Old")
    with app.test_request_context():  # refusals carry lazy translations
        data = {**snapshot(campaign), "title": "New", "valid_from": campaign.valid_from,
                "valid_until": campaign.valid_until + timedelta(days=1)}
        revision = update_campaign(owner=owner, campaign=campaign, data=data)
        commit_unit_of_work()
        end = datetime.fromisoformat(json.loads(revision.proposed_json)["valid_until"])
        with pytest.raises(InvalidCampaign) as refused:
            approve_revision(operator=create_operator(), revision=revision, now=end)
        assert refused.value.fields == {"field": "valid_until"}
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).title == "Old"
    assert db.session.scalar(select(CampaignRevision.status)) == RevisionStatus.pending
