"""Withdrawing from review: an owner takes a submitted campaign back (submitted -> draft) or the pending changes of
a live one (the revision closed unapplied); audited; gone from the review queue; a reviewer acting on a withdrawn
one is told so, and nothing changes."""

from __future__ import annotations

from sqlalchemy import select

from metropoints.campaigns.models import (
    CAMPAIGN_TRANSITIONS,
    Campaign,
    CampaignRevision,
    CampaignStatus,
    RevisionStatus,
)
from metropoints.core.db import db
from metropoints.core.models import AuditEntry
from tests.campaigns import form_data, page_text
from tests.campaigns.test_revisions import edit_form, live_title


def audit_actions() -> list[tuple[str, int | None, str]]:
    """(action, actor, subject) of every audit entry, oldest first."""
    return [tuple(row) for row in db.session.execute(
        select(AuditEntry.action, AuditEntry.actor_id, AuditEntry.subject).order_by(AuditEntry.id))]


def test_the_transition_table_lets_a_submission_go_back_to_draft():
    """Submitted may go back to draft (a withdrawal); a draft is not "withdrawn" to anything."""
    assert CampaignStatus.draft in CAMPAIGN_TRANSITIONS[CampaignStatus.submitted]
    assert CAMPAIGN_TRANSITIONS[CampaignStatus.draft] == {CampaignStatus.submitted}


def test_owner_withdraws_a_submitted_campaign(client, login, create_merchant, create_store, create_operator):
    """A submitted campaign withdrawn by its owner is a draft again, editable, audited, and no longer in the review
    queue; a reviewer who approves or rejects it afterwards is told it was withdrawn, and it stays a draft."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    operator = create_operator()
    login(owner)
    assert client.post("/portal/campaigns/new", data=form_data([store], title="Pulled latte")).status_code == 302
    campaign = db.session.scalar(select(Campaign))
    cid = campaign.id
    assert client.post(f"/portal/campaigns/{cid}/submit").status_code == 302
    status, html = page_text(client, f"/portal/campaigns/{cid}")
    assert f'action="/portal/campaigns/{cid}/withdraw"' in html and "Withdraw from review" in html
    login(operator)
    assert "Pulled latte" in page_text(client, "/portal/campaigns/review")[1]

    login(owner)
    status, html = page_text(client, f"/portal/campaigns/{cid}/withdraw", "post", follow_redirects=True)
    assert status == 200 and "Withdrawn from review: the campaign is a draft again." in html
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.draft and campaign.withdrawn
    assert client.get(f"/portal/campaigns/{cid}/edit").status_code == 200
    assert audit_actions() == [("campaign.withdraw", owner.id, f"campaign:{cid}")]

    login(operator)
    assert "Pulled latte" not in page_text(client, "/portal/campaigns/review")[1]
    status, html = page_text(client, f"/portal/campaigns/review/{cid}")
    assert status == 200 and "The merchant has withdrawn this campaign from review" in html
    message = "The merchant has withdrawn this campaign from review: there is nothing left to decide."
    for decision in ({"decision": "approve"}, {"decision": "reject", "reason": "Too late"}):
        status, html = page_text(client, f"/portal/campaigns/review/{cid}", "post", data=decision,
                                 follow_redirects=True)
        assert status == 200 and message in html, decision
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.draft and campaign.decision_reason == ""
    assert [action for action, _, _ in audit_actions()] == ["campaign.withdraw"]

    login(owner)  # it can go to review again
    assert client.post(f"/portal/campaigns/{cid}/submit").status_code == 302
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.submitted and not campaign.withdrawn


def test_owner_withdraws_the_changes_to_a_live_campaign(client, login, create_merchant, create_store,
                                                        create_campaign, create_operator):
    """Withdrawing a live campaign's pending revision closes it unapplied as withdrawn by the owner, audited; the
    catalogue keeps the approved version, the queue no longer lists it, the editor starts from the live version
    again, and a reviewer approving it afterwards is told it was withdrawn, with nothing applied."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    campaign = create_campaign(merchant, [store], title="Old latte")
    cid = campaign.id
    operator = create_operator()
    login(owner)
    assert client.post(f"/portal/campaigns/{cid}/edit",
                       data=edit_form(campaign, [store], title="New latte")).status_code == 302
    revision = db.session.scalar(select(CampaignRevision))
    status, html = page_text(client, f"/portal/campaigns/{cid}")
    assert f'action="/portal/campaigns/{cid}/withdraw_changes"' in html and "Withdraw the changes" in html

    status, html = page_text(client, f"/portal/campaigns/{cid}/withdraw_changes", "post", follow_redirects=True)
    assert status == 200 and "Changes withdrawn: riders keep seeing the approved version." in html
    db.session.refresh(revision)
    assert revision.status == RevisionStatus.rejected and revision.withdrawn and revision.decided_by == owner.id
    assert audit_actions() == [("campaign.revision.withdraw", owner.id, f"campaign:{cid} revision:{revision.id}")]
    assert live_title(client, cid) == "Old latte"
    assert 'value="Old latte"' in page_text(client, f"/portal/campaigns/{cid}/edit")[1]
    assert "Changes under review" not in page_text(client, f"/portal/campaigns/{cid}")[1]

    login(operator)
    html = page_text(client, "/portal/campaigns/review")[1]
    assert f"/portal/campaigns/review/revisions/{revision.id}" not in html
    status, html = page_text(client, f"/portal/campaigns/review/revisions/{revision.id}")
    assert status == 200 and "Withdrawn" in html and "The merchant has withdrawn these changes" in html
    status, html = page_text(client, f"/portal/campaigns/review/revisions/{revision.id}", "post",
                             data={"decision": "approve"}, follow_redirects=True)
    assert status == 200 and "The merchant has withdrawn these changes: there is nothing left to decide." in html
    assert live_title(client, cid) == "Old latte"
    db.session.refresh(revision)
    assert revision.status == RevisionStatus.rejected and revision.decided_by == owner.id


def test_there_must_be_something_to_withdraw(client, login, create_merchant, create_store, create_campaign):
    """Withdrawing a draft, or the changes of a live campaign that has none pending, is refused with a message;
    nothing changes and nothing is audited. Another merchant's owner cannot withdraw (404)."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    draft = create_campaign(merchant, [store], status=CampaignStatus.draft)
    live = create_campaign(merchant, [store])
    submitted = create_campaign(merchant, [store], status=CampaignStatus.submitted)
    login(owner)
    message = "Nothing of this campaign is under review, so there is nothing to withdraw."
    for cid, action in ((draft.id, "withdraw"), (live.id, "withdraw"), (live.id, "withdraw_changes"),
                        (draft.id, "withdraw_changes")):
        status, html = page_text(client, f"/portal/campaigns/{cid}/{action}", "post", follow_redirects=True)
        assert status == 200 and message in html, (cid, action)
    _, other_owner = create_merchant()
    login(other_owner)
    assert client.post(f"/portal/campaigns/{submitted.id}/withdraw").status_code == 404
    db.session.expire_all()
    assert [db.session.get(Campaign, c.id).status for c in (draft, live, submitted)] == [
        CampaignStatus.draft, CampaignStatus.approved, CampaignStatus.submitted]
    assert audit_actions() == []
