"""The full-screen kiosk page and its QR codes: public, no login, Chinese by default."""

from __future__ import annotations

from datetime import timedelta

from metropoints.campaigns.models import CampaignStatus
from metropoints.core.timeutil import utcnow


def test_page_renders_with_its_hooks(client):
    """/kiosk needs no login and answers the full-screen page: its stylesheet and script (served here, no CDN),
    the feed and QR URLs for kiosk.js, the labels as JSON, and the token never in the page."""
    reply = client.get("/kiosk")
    assert reply.status_code == 200 and reply.mimetype == "text/html"
    html = reply.get_data(as_text=True)
    for hook in ('href="/static/kiosk.css"', 'src="/static/kiosk.js"', 'data-feed-url="/api/v1/kiosk/feed"',
                 'data-qr-url="/kiosk/qr/0.svg"', 'id="kiosk-labels"', 'id="kiosk-slides"', 'id="kiosk-grid"',
                 'id="kiosk-co2"'):
        assert hook in html, hook
    assert "http://" not in html and "https://" not in html  # nothing from another origin
    for asset in ("/static/kiosk.js", "/static/kiosk.css"):
        static = client.get(asset)
        static.close()  # a file response: closed, or warnings-as-errors complain
        assert static.status_code == 200, asset


def test_page_is_chinese_by_default_and_english_on_request(client):
    """Chinese whatever the browser prefers; `?lang=en` switches to English, and the toggle links the other."""
    chinese = client.get("/kiosk", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'lang="zh-CN"' in chinese and "本站推荐" in chinese and 'href="/kiosk?lang=en"' in chinese
    english = client.get("/kiosk?lang=en").get_data(as_text=True)
    assert 'lang="en"' in english and "Featured at this station" in english and 'href="/kiosk?lang=zh"' in english
    assert 'lang="zh-CN"' in client.get("/kiosk?lang=fr").get_data(as_text=True)


def test_qr_of_a_live_campaign(app, client, create_merchant, create_store, create_campaign):
    """/kiosk/qr/<id>.svg is an SVG QR code for a live campaign, cacheable with an ETag (If-None-Match: 304)."""
    import segno

    from metropoints.kiosk.views import qr_svg

    merchant, _ = create_merchant()
    campaign = create_campaign(merchant, [create_store(merchant)])
    reply = client.get(f"/kiosk/qr/{campaign.id}.svg")
    assert reply.status_code == 200 and reply.mimetype == "image/svg+xml"
    assert reply.data.startswith(b"<svg") and b"viewBox" in reply.data
    expected = f"https://metro-points.example/app/campaigns/{campaign.id}"
    assert reply.data == qr_svg(expected)
    assert segno.make(expected).mode == "byte"  # a plain URL, as any phone camera reads it
    assert "max-age" in reply.headers["Cache-Control"]
    again = client.get(f"/kiosk/qr/{campaign.id}.svg", headers={"If-None-Match": reply.headers["ETag"]})
    assert again.status_code == 304
    app.config["RIDER_APP_URL"] = "https://app.example/"
    try:
        assert client.get(f"/kiosk/qr/{campaign.id}.svg").data == qr_svg(f"https://app.example/campaigns/{campaign.id}")
    finally:
        del app.config["RIDER_APP_URL"]


def test_qr_404_unless_live(client, create_merchant, create_store, create_campaign):
    """No QR for a campaign that is not on sale now, nor for one that does not exist."""
    merchant, _ = create_merchant()
    store = create_store(merchant)
    now = utcnow()
    for campaign in (create_campaign(merchant, [store], status=CampaignStatus.draft),
                     create_campaign(merchant, [store], stock_total=3, stock_left=0),
                     create_campaign(merchant, [store], valid_from=now - timedelta(days=3),
                                     valid_until=now - timedelta(days=1))):
        assert client.get(f"/kiosk/qr/{campaign.id}.svg").status_code == 404
    assert client.get("/kiosk/qr/999999.svg").status_code == 404
