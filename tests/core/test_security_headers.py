"""Security headers: every page carries a strict Content-Security-Policy (scripts and styles from our own files, no
'unsafe-inline'), refuses to be framed, sniffs nothing, leaks no referrer across sites, allows the camera to our own
pages only; the API's replies allow nothing and are not stored; HSTS only in production over HTTPS; no template
carries an inline script, handler, `javascript:` URL or style."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import auth

from metropoints.app import create_app
from metropoints.core.db import commit_unit_of_work
from metropoints.kiosk.operations import create_kiosk

TEMPLATES = Path(__file__).resolve().parents[2] / "metropoints" / "templates"
STATIC = TEMPLATES.parent / "static"


def policy(reply) -> dict[str, list[str]]:
    """The reply's Content-Security-Policy as {directive: [sources]}."""
    header = reply.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_pages_carry_a_strict_policy(client):
    """script-src and style-src are 'self' and the request's nonce, images also data:, no 'unsafe-inline' or
    'unsafe-eval' anywhere, objects none, frame-ancestors none."""
    reply = client.get("/login")
    csp = policy(reply)
    assert csp["script-src"][0] == "'self'" and re.fullmatch(r"'nonce-[\w-]{20,}'", csp["script-src"][1])
    assert csp["style-src"] == ["'self'", csp["script-src"][1]] and csp["img-src"] == ["'self'", "data:"]
    assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'self'"] and csp["form-action"] == ["'self'"]
    assert "unsafe" not in reply.headers["Content-Security-Policy"]


def test_a_fresh_nonce_each_request(client):
    """Two requests get two nonces (a nonce seen once tells an attacker nothing about the next page)."""
    first, second = (policy(client.get("/login"))["script-src"][1] for _ in range(2))
    assert first != second


def test_pages_refuse_framing_sniffing_and_referrers(client):
    """X-Frame-Options DENY, nosniff, Referrer-Policy same-origin, the camera for our own pages and nothing else."""
    reply = client.get("/")
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "same-origin"
    features = dict(part.strip().split("=") for part in reply.headers["Permissions-Policy"].split(","))
    assert features["camera"] == "(self)" and features["microphone"] == features["geolocation"] == "()"


def test_error_pages_and_static_files_carry_them_too(client):
    """A 404 page and a stylesheet have the same headers as any page."""
    for reply in (client.get("/no-such-page"), client.get("/static/style.css")):
        assert reply.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in reply.headers[
            "Content-Security-Policy"]
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        reply.close()


def test_api_replies_allow_nothing_and_are_not_stored(client, create_rider, rider_token):
    """JSON replies (and errors) get default-src 'none' and Cache-Control no-store, unless the view set its own
    caching (the kiosk feed keeps `private, no-cache` and its ETag)."""
    token = rider_token(create_rider())
    for reply in (client.get("/api/v1/me", headers=auth(token)), client.get("/api/v1/me"),
                  client.post("/api/v1/auth/token", json={"phone": "1", "password": "x"})):
        assert policy(reply) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"], "base-uri": ["'none'"],
                                 "form-action": ["'none'"]}
        assert reply.headers["Cache-Control"] == "no-store" and reply.headers["X-Content-Type-Options"] == "nosniff"
    _, kiosk_token = create_kiosk(station_id="0119", actor_label="test")
    commit_unit_of_work()
    feed = client.get("/api/v1/kiosk/feed", headers=auth(kiosk_token))
    assert feed.headers["Cache-Control"] == "private, no-cache" and feed.headers["ETag"]
    assert policy(feed)["default-src"] == ["'none'"]


def test_no_hsts_outside_production(client):
    """Development and tests, even over HTTPS, send no Strict-Transport-Security (a browser would remember it)."""
    assert "Strict-Transport-Security" not in client.get("/login").headers
    assert "Strict-Transport-Security" not in client.get("/login", base_url="https://localhost").headers


@pytest.fixture
def production_app():
    """A production app (its checks satisfied) on a database it never opens: the favicon redirect needs none."""
    return create_app({"TESTING": True, "DEPLOYMENT": "production", "SECRET_KEY": "s" * 40,
                       "PAYMENT_API_KEY": "sk_live_test", "PAYMENT_WEBHOOK_SECRET": "whsec_live_test",
                       "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_hsts_in_production_over_https_only(production_app):
    """Production over HTTPS: HSTS for a year; over plain HTTP (a health check on loopback): none."""
    client = production_app.test_client()
    secure = client.get("/favicon.ico", base_url="https://points.example.cn")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get("/favicon.ico").headers


def test_production_cookies_stay_secure_and_development_cookies_plain(app, production_app):
    """The headers' library leaves the cookie settings to the configuration: Secure in production only."""
    assert production_app.config["SESSION_COOKIE_SECURE"] is True
    assert not app.config.get("SESSION_COOKIE_SECURE")
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax" and app.config["SESSION_COOKIE_HTTPONLY"] is True


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
STYLE_WITHOUT_NONCE = re.compile(r"<style(?![^>]*\bnonce=\"\{\{ csp_nonce\(\) \}\}\")[^>]*>", re.I)
HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


@pytest.mark.parametrize("path", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_carry_no_inline_script_or_style(path):
    """No inline <script> (a JSON data block is not run), no on*= handler, no javascript: URL, no style attribute,
    no <style> block without the request's nonce: the policy would block them."""
    source = path.read_text()
    assert not INLINE_SCRIPT.search(source), "inline <script>"
    assert not HANDLER.search(source), "inline event handler"
    assert "javascript:" not in source.lower()
    assert "style=" not in source and not STYLE_WITHOUT_NONCE.search(source)


def test_scripts_build_no_inline_handlers_or_styles():
    """Our scripts never write handlers or style attributes into markup (innerHTML), which the policy would block."""
    for script in STATIC.glob("*.js"):
        source = script.read_text()
        assert not re.search(r"innerHTML\s*=.*(on[a-z]+=|style=)", source), script.name
        assert "eval(" not in source and "new Function" not in source, script.name


def test_the_preview_frames_its_kiosk_card_by_srcdoc(client):
    """The campaign preview's kiosk card is a sandboxed srcdoc frame: it has no address, so frame-ancestors 'none'
    and X-Frame-Options DENY (which govern framed replies) need no exception for it."""
    source = (TEMPLATES / "campaigns" / "preview.html").read_text()
    frame = re.search(r"<iframe[^>]*>", source).group(0)
    assert " sandbox " in frame and "srcdoc=" in frame and " src=" not in frame
