"""Duplicating a campaign: a new draft of the same merchant with the original's fields, stock, image and active
stores, its title marked as a copy, and none of the original's history; audited; from any status."""

from __future__ import annotations

from datetime import timedelta

from flask_babel import refresh
from sqlalchemy import func, select

from metropoints.campaigns.models import RIDER_FIELDS, Campaign, CampaignFeature, CampaignRevision, CampaignStatus
from metropoints.campaigns.queries import store_ids_of
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import AuditEntry
from metropoints.core.timeutil import utcnow
from tests.campaigns import STATION_B, page_text
from tests.campaigns.test_editor import error_on
from tests.campaigns.test_revisions import edit_form

IMAGE = "a" * 20 + ".png"


def newest_campaign() -> Campaign:
    """The campaign made last."""
    db.session.expire_all()
    return db.session.scalar(select(Campaign).order_by(Campaign.id.desc()).limit(1))


def test_a_copy_has_the_fields_and_none_of_the_history(client, login, create_merchant, create_store,
                                                       create_campaign, create_operator):
    """The copy of a live campaign that has sold coupons, been approved with a reason, has changes under review and
    a kiosk feature is a draft with the same rider-facing fields, stock total, image and stores; its title is marked
    as a copy; all its stock is left; it has no decision, revision or feature of its own; the original is untouched;
    the owner lands in the copy's editor, and the copy is audited with its origin."""
    from metropoints.campaigns.operations import feature_campaign

    merchant, owner = create_merchant()
    stores = [create_store(merchant), create_store(merchant, station_id=STATION_B)]
    original = create_campaign(merchant, stores, title="Latte voucher", stock_total=40, stock_left=12,
                               image_name=IMAGE, description="Any size.", terms="One per visit.",
                               decision_reason="Fine", decided_at=utcnow(), submitted_at=utcnow())
    feature_campaign(operator=create_operator(), campaign=original, station_ids=[STATION_B])
    commit_unit_of_work()
    login(owner)
    assert client.post(f"/portal/campaigns/{original.id}/edit",
                       data=edit_form(original, stores, title="Flat white voucher")).status_code == 302

    refresh()  # the copy's title is marked in the language of the request
    reply = client.post(f"/portal/campaigns/{original.id}/duplicate", headers={"Accept-Language": "en"})
    copy = newest_campaign()
    assert copy.id != original.id
    assert reply.status_code == 302 and reply.headers["Location"].endswith(f"/portal/campaigns/{copy.id}/edit")
    original = db.session.get(Campaign, original.id)
    assert copy.status == CampaignStatus.draft and copy.merchant_id == merchant.id
    assert copy.title == "Latte voucher (copy)"
    for field in RIDER_FIELDS:
        if field not in ("title", "store_ids"):
            assert getattr(copy, field) == getattr(original, field), field
    assert store_ids_of(copy) == store_ids_of(original) == sorted(s.id for s in stores)
    assert (copy.stock_total, copy.stock_left) == (40, 40)
    assert (copy.decision_reason, copy.submitted_at, copy.decided_at) == ("", None, None)
    assert db.session.scalar(select(func.count()).select_from(CampaignRevision)
                             .where(CampaignRevision.campaign_id == copy.id)) == 0
    assert db.session.scalar(select(func.count()).select_from(CampaignFeature)
                             .where(CampaignFeature.campaign_id == copy.id)) == 0
    assert (original.status, original.title, original.stock_left) == (CampaignStatus.approved, "Latte voucher", 12)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.duplicate"))
    assert (entry.actor_id, entry.subject, entry.reason) == (owner.id, f"campaign:{copy.id}",
                                                             f"from campaign:{original.id}")
    status, html = page_text(client, f"/portal/campaigns/{copy.id}/edit")
    assert status == 200 and 'value="Latte voucher (copy)"' in html


def test_any_status_can_be_copied_and_only_active_stores_come_along(client, login, create_merchant, create_store,
                                                                    create_campaign):
    """Campaigns in every status (ended and submitted included) copy into drafts; a store closed since is left
    out of the copy, as a new campaign may name only active stores."""
    from metropoints.marketplace.models import Store

    merchant, owner = create_merchant()
    open_store, closing = create_store(merchant), create_store(merchant)
    campaigns = [create_campaign(merchant, [open_store, closing], status=status) for status in CampaignStatus]
    db.session.get(Store, closing.id).active = False
    commit_unit_of_work()
    login(owner)
    for campaign in campaigns:
        assert client.post(f"/portal/campaigns/{campaign.id}/duplicate").status_code == 302, campaign.status
        copy = newest_campaign()
        assert copy.status == CampaignStatus.draft and store_ids_of(copy) == [open_store.id], campaign.status
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 2 * len(campaigns)


def test_a_long_title_stays_within_the_column(app, create_merchant, create_store, create_campaign):
    """The copy's title is marked as a copy and still fits the 80 characters of the title: the original's title
    is shortened, with "…", to make room."""
    from metropoints.campaigns.operations import duplicate_campaign

    merchant, owner = create_merchant()
    original = create_campaign(merchant, [create_store(merchant)], title="L" * 80)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        refresh()
        copy = duplicate_campaign(owner=owner, campaign=original)
        commit_unit_of_work()
    assert len(copy.title) == 80 and copy.title.endswith("L… (copy)") and copy.title.startswith("LLL")


def test_a_copy_of_an_ended_sale_asks_for_new_dates(client, login, create_merchant, create_store, create_campaign):
    """A copy keeps a sale window already over (a draft may hold it); its page and its editor say that the dates
    must change (the editor on the end of the sale, with the rule's message), and submitting it is refused until
    they do."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    now = utcnow()
    ended = create_campaign(merchant, [store], status=CampaignStatus.ended, valid_from=now - timedelta(days=40),
                            valid_until=now - timedelta(days=10))
    login(owner)
    assert client.post(f"/portal/campaigns/{ended.id}/duplicate").status_code == 302
    copy = newest_campaign()
    assert copy.valid_until == ended.valid_until and copy.status == CampaignStatus.draft
    message = "The sale would already be over: choose an end in the future."
    status, html = page_text(client, f"/portal/campaigns/{copy.id}/edit")
    assert status == 200 and error_on(html, "valid_until", message)
    status, html = page_text(client, f"/portal/campaigns/{copy.id}")
    assert status == 200 and "The sale dates are over: choose new ones in the editor before submitting." in html
    status, html = page_text(client, f"/portal/campaigns/{copy.id}/submit", "post", follow_redirects=True)
    assert status == 200 and message in html
    assert newest_campaign().status == CampaignStatus.draft
    status, html = page_text(client, f"/portal/campaigns/{ended.id}/edit")
    assert status == 409  # the ended original itself stays locked


def test_only_the_owner_copies_and_the_pages_offer_it(client, login, create_merchant, create_store, create_campaign,
                                                      create_operator):
    """The list and the campaign's page have a Duplicate button; another merchant's owner gets 404 and an operator
    403, and nothing is copied."""
    merchant, owner = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)])
    _, other_owner = create_merchant()
    login(owner)
    action = f'action="/portal/campaigns/{campaign.id}/duplicate"'
    for path in ("/portal/campaigns/", f"/portal/campaigns/{campaign.id}"):
        status, html = page_text(client, path)
        assert status == 200 and action in html and "Duplicate" in html, path
    login(other_owner)
    assert client.post(f"/portal/campaigns/{campaign.id}/duplicate").status_code == 404
    login(create_operator())
    assert client.post(f"/portal/campaigns/{campaign.id}/duplicate").status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 1
