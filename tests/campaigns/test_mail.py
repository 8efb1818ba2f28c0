"""Review mail through a real SMTP server: the merchant's owner hears of a campaign or a revision approved, or
rejected with the reason, in the owner's language, with the link to the campaign's page; a refused or rolled-back
decision mails nothing; the mail job on rq."""

from __future__ import annotations

import json

from sqlalchemy import select

from metropoints.campaigns import operations as ops
from metropoints.campaigns.models import CampaignRevision, CampaignStatus, RevisionStatus
from metropoints.campaigns.queries import snapshot
from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work
from metropoints.core.jobs import get_queue
from metropoints.core.models import MailStatus, OutgoingMail
from tests.helpers import work_burst


def reading(owner, locale: str):
    """The owner, reading mail in `locale` (committed)."""
    owner.locale = locale
    commit_unit_of_work()
    return owner


def propose(campaign, owner, **changes) -> CampaignRevision:
    """A pending revision of a live campaign changing these fields (committed)."""
    current = snapshot(campaign)
    revision = CampaignRevision(campaign_id=campaign.id, status=RevisionStatus.pending, created_by=owner.id,
                                proposed_json=json.dumps({**current, **changes}), previous_json=json.dumps(current))
    db.session.add(revision)
    commit_unit_of_work()
    return revision


def kinds() -> list[tuple[str, str, MailStatus]]:
    """(kind, recipient, status) of every mail queued, oldest first."""
    db.session.expire_all()
    return [tuple(row) for row in db.session.execute(
        select(OutgoingMail.kind, OutgoingMail.to_address, OutgoingMail.status).order_by(OutgoingMail.id))]


def test_an_approved_campaign_is_mailed_with_its_link_and_the_reviewers_note(
        app, client, login, smtp_server, create_merchant, create_store, create_campaign, create_operator):
    """Approving a submitted campaign mails the owner (in English here) its title, the reviewer's note and the
    link to the campaign's page in the portal, at the platform's public address."""
    merchant, owner = create_merchant(name="Green Bean Café")
    reading(owner, "en")
    campaign = create_campaign(merchant, [create_store(merchant)], status=CampaignStatus.submitted,
                               title="Latte voucher")
    login(create_operator())
    reply = client.post(f"/portal/campaigns/review/{campaign.id}", data={"decision": "approve", "reason": "Nice"})
    assert reply.status_code == 302
    (message,) = smtp_server.wait(1)
    assert message["To"] == owner.email and message["Subject"] == "Campaign approved: Latte voucher"
    body = message.get_content()
    assert "The reviewer notes: Nice" in body
    assert f"{app.config['PUBLIC_URL']}/portal/campaigns/{campaign.id}\n" in body.replace("\r\n", "\n")
    assert kinds() == [("campaign.approved", owner.email, MailStatus.sent)]


def test_a_rejected_campaign_is_mailed_with_the_reason_in_chinese(
        client, login, smtp_server, create_merchant, create_store, create_campaign, create_operator):
    """Rejecting mails the owner the reviewer's reason; an owner reading Chinese gets it in Chinese, whatever the
    reviewer's page language."""
    merchant, owner = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)], status=CampaignStatus.submitted,
                               title="拿铁代金券")
    login(create_operator())
    reply = client.post(f"/portal/campaigns/review/{campaign.id}",
                        data={"decision": "reject", "reason": "使用条款不清楚"}, headers={"Accept-Language": "en"})
    assert reply.status_code == 302
    (message,) = smtp_server.wait(1)
    assert message["To"] == owner.email and message["Subject"] == "权益活动未通过审核：拿铁代金券"
    assert "使用条款不清楚" in message.get_content() and "重新提交审核" in message.get_content()


def test_revisions_approved_and_rejected_are_mailed_with_the_reason(
        client, login, smtp_server, create_merchant, create_store, create_campaign, create_operator):
    """An approved revision mails the owner that riders see the new version (under its new title); a rejected one
    mails the reason and that the approved version stays on sale."""
    merchant, owner = create_merchant()
    reading(owner, "en")
    campaign = create_campaign(merchant, [create_store(merchant)], title="Old latte")
    login(create_operator())
    first = propose(campaign, owner, title="New latte")
    reply = client.post(f"/portal/campaigns/review/revisions/{first.id}", data={"decision": "approve", "reason": ""})
    assert reply.status_code == 302
    second = propose(campaign, owner, title="Newer latte", point_price=100_000)
    reply = client.post(f"/portal/campaigns/review/revisions/{second.id}",
                        data={"decision": "reject", "reason": "The price is far too high."})
    assert reply.status_code == 302
    approved, rejected = smtp_server.wait(2)
    assert approved["Subject"] == "Change approved: New latte"
    assert "Riders see the new version" in approved.get_content() and "reviewer" not in approved.get_content()
    assert rejected["Subject"] == "Change not approved: New latte"  # the live title: the change was refused
    assert "The price is far too high." in rejected.get_content()
    assert "stays on sale" in rejected.get_content() and f"/portal/campaigns/{campaign.id}" in rejected.get_content()
    assert [k for k, _to, _s in kinds()] == ["campaign.revision_approved", "campaign.revision_rejected"]


def test_a_refused_or_rolled_back_decision_mails_nothing(
        client, login, smtp_server, create_merchant, create_store, create_campaign, create_operator):
    """A decision the rules refuse (rejecting a campaign another reviewer approved already) mails nothing; a
    rejection whose unit of work is rolled back takes its queued mail with it."""
    merchant, _owner = create_merchant()
    store = create_store(merchant)
    decided = create_campaign(merchant, [store], status=CampaignStatus.approved)
    login(create_operator())
    client.post(f"/portal/campaigns/review/{decided.id}", data={"decision": "reject", "reason": "Too late"})
    db.session.refresh(decided)
    assert decided.status == CampaignStatus.approved and kinds() == []
    campaign = create_campaign(merchant, [store], status=CampaignStatus.submitted)
    ops.reject_campaign(operator=create_operator(), campaign=campaign, reason="Not now")
    assert [k for k, _to, _s in kinds()] == ["campaign.rejected"]  # queued in the unit of work...
    rollback_unit_of_work()
    assert kinds() == [] and smtp_server.wait(1, timeout=0.5) == []  # ...and gone with it, nothing sent


def test_the_decision_mail_goes_through_an_rq_job(redis_app, smtp_server, create_merchant, create_store,
                                                  create_campaign, create_operator):
    """With Redis, the decision's mail is handed to rq after the commit and sent by a worker."""
    merchant, owner = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)], status=CampaignStatus.submitted)
    ops.approve_campaign(operator=create_operator(), campaign=campaign)
    commit_unit_of_work()
    assert get_queue("default").count == 1 and smtp_server.messages == []
    work_burst("default")
    (message,) = smtp_server.wait(1)
    assert message["To"] == owner.email and "已通过审核" in message["Subject"]
    assert kinds() == [("campaign.approved", owner.email, MailStatus.sent)]
