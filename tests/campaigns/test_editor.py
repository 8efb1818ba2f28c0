"""The owner's campaign editor: what it refuses (with a message on the field) and who may reach it."""

from __future__ import annotations

import io
import re

from flask_babel import refresh
from sqlalchemy import func, select

from metropoints.campaigns.models import Campaign, CampaignStatus, CampaignStore
from metropoints.core.db import db
from tests.campaigns import STATION_B, form_data, page_text

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def field_error(html: str, message: str) -> bool:
    """True when the page shows `message` as a field error."""
    return f'<p class="error">{message}</p>' in html


def error_on(html: str, field: str, message: str) -> bool:
    """True when the page shows `message` as an error of the form field named `field`."""
    return re.search(rf'name="{field}"[^>]*>\s*</label>\s*<p class="error">{re.escape(message)}</p>', html) is not None


def test_owner_creates_a_draft_with_its_stores(client, login, create_merchant, create_store):
    """A valid form makes a draft of the owner's merchant, valid at the chosen stores, with stock_left = stock."""
    merchant, owner = create_merchant()
    stores = [create_store(merchant), create_store(merchant, station_id=STATION_B)]
    login(owner)
    reply = client.post("/portal/campaigns/new", data=form_data(stores))
    assert reply.status_code == 302
    campaign = db.session.scalar(select(Campaign))
    assert campaign.status == CampaignStatus.draft and campaign.merchant_id == merchant.id
    assert (campaign.face_value_fen, campaign.point_price, campaign.stock_total, campaign.stock_left) == (2000, 400,
                                                                                                            50, 50)
    assert set(db.session.scalars(select(CampaignStore.store_id))) == {s.id for s in stores}
    assert campaign.valid_from.utcoffset().total_seconds() == 0


def test_form_refusals_each_with_a_message_on_its_field(client, login, create_merchant, create_store):
    """End before start, stock 0, no store, and a price out of range for the face value are refused (422), each with
    its message on its field; nothing is saved."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    login(owner)
    base = form_data([store])
    cases = [
        ({"valid_until": base["valid_from"]}, "The sale must end after it starts."),
        ({"stock_total": "0"}, "The stock must be at least 1."),
        ({"store_ids": []}, "Choose at least one store."),
        # 20 yuan at 5..200 points per yuan: 100..4000 points.
        ({"point_price": "99"}, "For this benefit the point price must be between 100 and 4000."),
        ({"point_price": "4001"}, "For this benefit the point price must be between 100 and 4000."),
        ({"benefit_type": "discount", "discount_percent": "", "face_value_yuan": ""}, "A discount needs a percentage."),
    ]
    for overrides, message in cases:
        status, html = page_text(client, "/portal/campaigns/new", "post", data={**base, **overrides})
        assert status == 422 and field_error(html, message), (overrides, message)
    assert db.session.scalar(select(Campaign.id)) is None


def test_price_range_follows_the_configuration(app, client, login, create_merchant, create_store):
    """The points-per-yuan bounds come from the app config: raising the minimum refuses a price that passed before."""
    merchant, owner = create_merchant()
    store = create_store(merchant)
    login(owner)
    app.config["CAMPAIGN_POINTS_PER_YUAN_MIN"] = 50
    try:
        status, html = page_text(client, "/portal/campaigns/new", "post", data=form_data([store]))
        assert status == 422 and field_error(html, "For this benefit the point price must be between 1000 and 4000.")
    finally:
        del app.config["CAMPAIGN_POINTS_PER_YUAN_MIN"]


def test_another_merchants_store_is_refused(client, login, create_merchant, create_store):
    """A store id of another merchant (or an inactive store) is not a choice: a form error, nothing saved."""
    merchant, owner = create_merchant()
    other, _ = create_merchant()
    mine, theirs = create_store(merchant), create_store(other)
    closed = create_store(merchant, active=False)
    login(owner)
    for store_ids in ([str(mine.id), str(theirs.id)], [str(closed.id)]):
        status, html = page_text(client, "/portal/campaigns/new", "post",
                                 data=form_data([mine], store_ids=store_ids))
        assert status == 422 and field_error(html, "That is not one of your stores.")
        assert theirs.name not in html
    assert db.session.scalar(select(Campaign.id)) is None


def test_image_upload_checks_magic_bytes(app, client, login, create_merchant, create_store, tmp_path, monkeypatch):
    """An image is kept only when its first bytes say PNG/JPEG/WebP (a renamed text file is refused); it is served
    back by its random name."""
    monkeypatch.setitem(app.config, "CAMPAIGN_UPLOAD_DIR", str(tmp_path))
    merchant, owner = create_merchant()
    store = create_store(merchant)
    login(owner)
    fake = form_data([store], image=(io.BytesIO(b"not an image at all"), "photo.png"))
    status, html = page_text(client, "/portal/campaigns/new", "post", data=fake, content_type="multipart/form-data")
    assert status == 422 and field_error(html, "The image must be a PNG, JPEG or WebP file.")
    real = form_data([store], image=(io.BytesIO(PNG), "photo.png"))
    assert client.post("/portal/campaigns/new", data=real, content_type="multipart/form-data").status_code == 302
    name = db.session.scalar(select(Campaign.image_name))
    assert name.endswith(".png") and "photo" not in name
    served = client.get(f"/portal/campaigns/images/{name}")
    assert served.status_code == 200 and served.data == PNG and served.mimetype == "image/png"
    served.close()
    assert (tmp_path / name).read_bytes() == PNG
    assert client.get("/portal/campaigns/images/..%2Fsecret.png").status_code == 404


def test_cashier_cannot_reach_the_editor(client, login, create_merchant, create_store, create_cashier,
                                         create_campaign):
    """A cashier gets 403 on the campaign list, the editor and a campaign of their own merchant."""
    merchant, _ = create_merchant()
    store = create_store(merchant)
    campaign = create_campaign(merchant, [store], status=CampaignStatus.draft)
    login(create_cashier(merchant, store))
    for path in ("/portal/campaigns/", "/portal/campaigns/new", f"/portal/campaigns/{campaign.id}",
                 f"/portal/campaigns/{campaign.id}/edit"):
        assert client.get(path).status_code == 403, path
    assert client.post(f"/portal/campaigns/{campaign.id}/submit").status_code == 403


def test_other_merchants_owner_sees_nothing(client, login, create_merchant, create_store, create_campaign):
    """Another merchant's owner gets 404 on every page and action of a campaign that is not theirs, never its data."""
    merchant, _ = create_merchant()
    _, intruder = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)], title="Secret plan", status=CampaignStatus.draft)
    login(intruder)
    for path in (f"/portal/campaigns/{campaign.id}", f"/portal/campaigns/{campaign.id}/edit"):
        reply = client.get(path)
        assert reply.status_code == 404 and b"Secret plan" not in reply.data
    for action in ("submit", "pause", "end", "stock"):
        assert client.post(f"/portal/campaigns/{campaign.id}/{action}", data={"amount": "5"}).status_code == 404
    assert b"Secret plan" not in client.get("/portal/campaigns/").data
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.draft


def test_visitors_are_sent_to_login_and_operators_are_refused_the_editor(client, login, create_operator):
    """Anonymous visitors go to the login page; an operator gets 403 on the owner's editor."""
    reply = client.get("/portal/campaigns/new")
    assert reply.status_code == 302 and "/login" in reply.headers["Location"]
    login(create_operator())
    assert client.get("/portal/campaigns/new").status_code == 403


def test_a_sale_already_over_is_refused_on_its_end(client, login, create_merchant, create_store, create_campaign):
    """A sale window entirely in the past (its end at or before now) is refused at save, on `valid_until` with its
    message (in English and in the default Chinese): a new draft, a draft edited in place and a revision of a live
    campaign alike; nothing is saved."""
    from datetime import timedelta

    from metropoints.campaigns.models import CampaignRevision
    from metropoints.core.timeutil import SERVICE_ZONE, utcnow

    merchant, owner = create_merchant()
    store = create_store(merchant)
    draft = create_campaign(merchant, [store], status=CampaignStatus.draft, title="Draft")
    live = create_campaign(merchant, [store], title="Live")
    login(owner)
    now = utcnow().astimezone(SERVICE_ZONE)
    past = {"valid_from": (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
            "valid_until": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")}
    message = "The sale would already be over: choose an end in the future."
    for path in ("/portal/campaigns/new", f"/portal/campaigns/{draft.id}/edit", f"/portal/campaigns/{live.id}/edit"):
        status, html = page_text(client, path, "post", data=form_data([store], title="Changed", **past))
        assert status == 422 and error_on(html, "valid_until", message), path
        refresh()  # the test's app context outlives requests: drop Babel's English
        reply = client.post(path, data=form_data([store], title="Changed", **past), headers={"Accept-Language": "zh"})
        assert reply.status_code == 422
        assert error_on(reply.get_data(as_text=True), "valid_until", "兑换期已经结束：请选择一个未来的结束时间。"), path
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 2
    assert {c.title for c in db.session.scalars(select(Campaign))} == {"Draft", "Live"}
    assert db.session.scalar(select(CampaignRevision.id)) is None


def test_the_rules_refuse_an_ended_sale_by_the_clock_they_are_given(app, create_merchant, create_store):
    """create_campaign refuses a window whose end is not after `now` (InvalidCampaign on valid_until) and takes the
    same window while `now` is still before its end."""
    from datetime import timedelta

    import pytest

    from metropoints.campaigns.errors import InvalidCampaign
    from metropoints.campaigns.operations import create_campaign
    from metropoints.core.timeutil import utcnow

    merchant, owner = create_merchant()
    store = create_store(merchant)
    now = utcnow()
    data = {"title": "Tea", "category": "dining", "benefit_type": "free_item", "point_price": 100, "stock_total": 5,
            "per_rider_limit": 1, "coupon_valid_days": 7, "store_ids": [store.id],
            "valid_from": now - timedelta(days=2), "valid_until": now - timedelta(days=1)}
    with app.test_request_context():  # the refusal's message is a lazy translation
        for at in (now, data["valid_until"]):
            with pytest.raises(InvalidCampaign) as refused:
                create_campaign(owner=owner, data=data, now=at)
            assert refused.value.fields == {"field": "valid_until"}
        assert create_campaign(owner=owner, data=data, now=data["valid_until"] - timedelta(seconds=1)).id
