"""The preview: a campaign before it is live, as the rider app receives it (the catalogue item, through the same
schema as the API) and as a kiosk draws its card (the kiosk's stylesheet and classes), for its owner and for the
metro team; with the changes under review when there are some; a draft previews as it stands."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

from sqlalchemy import select

from metropoints.campaigns.models import CampaignRevision, CampaignStatus
from metropoints.core.db import db
from metropoints.core.timeutil import utcnow
from tests.campaigns import page_text
from tests.campaigns.test_lifecycle import CONTRACT_FIELDS
from tests.campaigns.test_revisions import edit_form

IMAGE = "b" * 20 + ".png"


def kiosk_frame(page: str) -> str:
    """The kiosk card's document, from the preview frame's srcdoc."""
    match = re.search(r'<iframe[^>]*srcdoc="([^"]*)"', page)
    assert match, "no kiosk frame"
    return html_lib.unescape(match.group(1))


def test_a_draft_previews_as_riders_and_kiosks_will_show_it(client, login, create_merchant, create_store,
                                                            create_campaign):
    """An owner's draft without an image previews: the rider app's fields, the catalogue item's JSON in the
    contract's order with the draft's values, and a kiosk card (kiosk.css, a featured slide and a grid tile with
    merchant, title, price and stock, the QR as a placeholder); merchant text is escaped inside the card."""
    merchant, owner = create_merchant(name="Green Bean Café")
    store = create_store(merchant, name="Zhongjie branch")
    draft = create_campaign(merchant, [store], status=CampaignStatus.draft, title="<i>Latte</i> voucher",
                            point_price=1200, stock_total=30, description="Any size.")
    login(owner)
    status, page = page_text(client, f"/portal/campaigns/{draft.id}/preview")
    assert status == 200
    assert "&lt;i&gt;Latte&lt;/i&gt; voucher" in page and "Green Bean Café" in page and "Zhongjie branch" in page
    assert "Riders and kiosks do not show this campaign yet" in page and "No image yet." in page
    assert f'href="/portal/campaigns/{draft.id}/preview.json"' in page

    card = kiosk_frame(page)
    assert '<link rel="stylesheet" href="/static/kiosk.css">' in card and '<body class="kiosk">' in card
    for css_class in ("kiosk-slide is-current", "kiosk-slide-title", "kiosk-tile", "kiosk-tile-title",
                      "kiosk-price", "kiosk-stock", "kiosk-stores", "kiosk-qr kiosk-qr-large"):
        assert f'class="{css_class}"' in card, css_class
    assert "&lt;i&gt;Latte&lt;/i&gt; voucher" in card and "<i>" not in card
    assert "1,200 points" in card and "left 30 · until" in card and "Zhongjie branch" in card
    assert "/kiosk/qr/" not in card  # the kiosk serves QR codes of live campaigns only

    item = client.get(f"/portal/campaigns/{draft.id}/preview.json").get_json()
    assert list(item)[:len(CONTRACT_FIELDS)] == CONTRACT_FIELDS
    assert (item["campaign_id"], item["title"], item["point_price"], item["stock_left"]) == (
        draft.id, "<i>Latte</i> voucher", 1200, 30)
    assert item["valid_from"].endswith("+08:00") and item["image_url"] is None
    assert item["stores"] == [{"store_id": store.id, "name": "Zhongjie branch", "address": store.address,
                               "station_id": store.station_id}]


def test_the_preview_item_is_the_catalogue_item(client, login, create_merchant, create_store, create_campaign):
    """For a live campaign the preview's JSON is exactly what the rider API's catalogue returns for it."""
    merchant, owner = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)], image_name=IMAGE)
    login(owner)
    preview = client.get(f"/portal/campaigns/{campaign.id}/preview.json").get_json()
    assert preview == client.get(f"/api/v1/catalog/{campaign.id}").get_json()
    assert preview["image_url"] == f"/portal/campaigns/images/{IMAGE}"
    status, page = page_text(client, f"/portal/campaigns/{campaign.id}/preview")
    assert status == 200 and "On sale now" in page and f'src="/portal/campaigns/images/{IMAGE}"' in page


def test_changes_under_review_are_what_the_preview_shows(client, login, create_merchant, create_store,
                                                         create_campaign, create_operator):
    """With a pending revision, the preview (for the owner and for the reviewer) shows the proposed title and
    stores, while the catalogue keeps the approved version; the reviewer's pages link to it and back."""
    merchant, owner = create_merchant()
    store, new_store = create_store(merchant, name="Old branch"), create_store(merchant, name="New branch")
    campaign = create_campaign(merchant, [store], title="Old latte")
    login(owner)
    assert client.post(f"/portal/campaigns/{campaign.id}/edit",
                       data=edit_form(campaign, [new_store], title="New latte")).status_code == 302
    revision = db.session.scalar(select(CampaignRevision))
    for user in (owner, create_operator()):
        login(user)
        item = client.get(f"/portal/campaigns/{campaign.id}/preview.json").get_json()
        assert item["title"] == "New latte" and [s["name"] for s in item["stores"]] == ["New branch"]
        status, page = page_text(client, f"/portal/campaigns/{campaign.id}/preview")
        assert status == 200 and "These are the changes under review" in page
        assert "New latte" in kiosk_frame(page) and "Old latte" not in kiosk_frame(page)
    assert client.get(f"/api/v1/catalog/{campaign.id}").get_json()["title"] == "Old latte"
    assert f'href="/portal/campaigns/review/revisions/{revision.id}"' in page  # back to the review
    status, page = page_text(client, f"/portal/campaigns/review/revisions/{revision.id}")
    assert f'href="/portal/campaigns/{campaign.id}/preview"' in page


def test_who_may_preview(client, login, create_merchant, create_store, create_campaign, create_operator,
                         create_cashier):
    """The owner previews their own campaigns in any status, an operator any campaign (linked from the review
    page); another merchant's owner gets 404, a cashier 403."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    campaigns = [create_campaign(merchant, [store], status=status) for status in CampaignStatus]
    campaigns.append(create_campaign(merchant, [store], title="Sold out", stock_left=0))
    campaigns.append(create_campaign(merchant, [store], status=CampaignStatus.draft, title="Old dates",
                                     valid_from=utcnow() - timedelta(days=9), valid_until=utcnow() - timedelta(days=2)))
    login(owner)
    for campaign in campaigns:
        for suffix in ("preview", "preview.json"):
            assert client.get(f"/portal/campaigns/{campaign.id}/{suffix}").status_code == 200, (campaign.title, suffix)
            assert page_text(client, f"/portal/campaigns/{campaign.id}/{suffix}")[0] == 200
    assert client.get(f"/portal/campaigns/{campaigns[-2].id}/preview.json").get_json()["stock_left"] == 0
    assert "The sale dates are over" in page_text(client, f"/portal/campaigns/{campaigns[-1].id}/preview")[1]
    page = page_text(client, f"/portal/campaigns/{campaigns[0].id}")[1]
    assert f'href="/portal/campaigns/{campaigns[0].id}/preview"' in page
    login(create_operator())
    submitted = next(c for c in campaigns if c.status == CampaignStatus.submitted)
    assert client.get(f"/portal/campaigns/{submitted.id}/preview").status_code == 200
    page = page_text(client, f"/portal/campaigns/review/{submitted.id}")[1]
    assert f'href="/portal/campaigns/{submitted.id}/preview"' in page
    _, other_owner = create_merchant()
    login(other_owner)
    assert client.get(f"/portal/campaigns/{submitted.id}/preview").status_code == 404
    assert client.get(f"/portal/campaigns/{submitted.id}/preview.json").status_code == 404
    login(create_cashier(merchant, store))
    assert client.get(f"/portal/campaigns/{submitted.id}/preview").status_code == 403
