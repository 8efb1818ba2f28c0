"""The front page explains the platform and leads to the merchant application; the site has its icon; error pages,
the rate-limit page and the log-in prompt speak the page's language."""

from __future__ import annotations

from flask import g
from flask_babel import refresh

ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en"}


def get(client, path: str, headers: dict[str, str], **kwargs):
    """A GET from a fresh context (the test's app context outlives requests)."""
    refresh()
    g.pop("_login_user", None)
    return client.get(path, headers=headers, **kwargs)


def test_front_page_explains_and_links_to_the_application(client):
    """Riders earn points per km (the rule in force), merchants fund benefits and pay per benefit honoured, the CO2e
    factor is quoted; the page links to the merchant application and the login, in zh and en."""
    zh = get(client, "/", ZH).get_data(as_text=True)
    assert "每公里 1 积分，每天最多 60 积分" in zh and "44 克" in zh and "实际核销" in zh
    assert 'href="/portal/apply"' in zh and 'href="/login"' in zh
    en = get(client, "/", EN).get_data(as_text=True)
    assert "1 per kilometre, up to 60 a day" in en and "avoids 44 g of CO2e" in en
    assert "Apply as a merchant" in en


def test_the_site_has_its_icon(client):
    """Every page and the kiosk link the SVG icon; /favicon.ico, which browsers ask for, answers with it too."""
    assert '<link rel="icon" href="/favicon.svg"' in get(client, "/", ZH).get_data(as_text=True)
    assert '<link rel="icon" href="/favicon.svg"' in get(client, "/kiosk", ZH).get_data(as_text=True)
    for path in ("/favicon.svg", "/favicon.ico"):
        svg = get(client, path, ZH)
        assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"#1b7f4b" in svg.data, path
        assert svg.cache_control.max_age == 86400


def test_error_pages_and_the_login_prompt_are_translated(client):
    """404 and 429 pages say what happened in Chinese (not werkzeug's or the limiter's English); a visitor sent to
    the login page is asked in Chinese; in English the same pages are English."""
    missing = get(client, "/no-such-page", ZH)
    assert missing.status_code == 404 and "该页面不存在" in missing.get_data(as_text=True)
    assert "This page does not exist" in get(client, "/no-such-page", EN).get_data(as_text=True)
    for _ in range(10):
        refresh()
        client.post("/login", data={"email": "x@shop.example", "password": "wrong-pass"}, headers=ZH)
    refresh()
    limited = client.post("/login", data={"email": "x@shop.example", "password": "wrong-pass"}, headers=ZH)
    assert limited.status_code == 429 and "尝试次数过多" in limited.get_data(as_text=True)
    prompt = get(client, "/portal", ZH, follow_redirects=True).get_data(as_text=True)
    assert "请先登录后再打开此页面。" in prompt


def test_wtforms_messages_are_chinese(client):
    """WTForms' own messages (a required field, a malformed address) come in the page's language."""
    refresh()
    empty = client.post("/login", data={}, headers=ZH).get_data(as_text=True)
    assert empty.count("该字段是必填字段。") == 2
    refresh()
    malformed = client.post("/login", data={"email": "not-an-address", "password": "x"}, headers=ZH)
    assert "无效的 Email 地址。" in malformed.get_data(as_text=True)
    refresh()
    assert "This field is required." in client.post("/login", data={}, headers=EN).get_data(as_text=True)
