"""Every campaign page renders for the role it is for, in English and in the default Chinese, and the portal's
navigation links to it."""

from __future__ import annotations

from metropoints.campaigns.models import CampaignStatus
from tests.campaigns import page_text


def test_owner_pages_render_in_every_state(client, login, create_merchant, create_store, create_campaign):
    """List, detail and editor render for campaigns in each status; the owner's navigation has "Campaigns"."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    campaigns = [create_campaign(merchant, [store], status=status) for status in CampaignStatus]
    login(owner)
    status, html = page_text(client, "/portal/campaigns/")
    assert status == 200 and 'href="/portal/campaigns/">Campaigns</a>' in html
    assert client.get("/portal/campaigns/new").status_code == 200
    for campaign in campaigns:
        assert client.get(f"/portal/campaigns/{campaign.id}").status_code == 200
        expected = 409 if campaign.status in (CampaignStatus.submitted, CampaignStatus.ended) else 200
        assert client.get(f"/portal/campaigns/{campaign.id}/edit").status_code == expected
    status, html = page_text(client, f"/portal/campaigns/{campaigns[2].id}")  # approved: stock form and actions
    assert "Add stock" in html and "Pause" in html


def test_operator_pages_render(client, login, create_merchant, create_store, create_campaign, create_operator):
    """The review queue, a campaign's review page with its audit log, and featuring render for operators; their
    navigation has "Review queue"."""
    merchant, _ = create_merchant()
    store = create_store(merchant)
    submitted = create_campaign(merchant, [store], status=CampaignStatus.submitted)
    approved = create_campaign(merchant, [store], title="Approved one")
    login(create_operator())
    status, html = page_text(client, "/portal/campaigns/review")
    assert status == 200 and ">Review queue</a>" in html and "Approved one" in html
    for path in (f"/portal/campaigns/review/{submitted.id}", f"/portal/campaigns/review/{approved.id}",
                 f"/portal/campaigns/{approved.id}/features"):
        assert client.get(path).status_code == 200, path
        assert page_text(client, path)[0] == 200
    assert client.get("/portal/campaigns/review/revisions/12345").status_code == 404
    assert client.get("/portal/campaigns/review/12345").status_code == 404
