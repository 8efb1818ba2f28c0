"""Security headers on every reply, set by Flask-Talisman: what a page may load and run, who may frame it, what the
browser may send on and remember.

Pages: scripts only from our own static files (`script-src 'self'`, plus a per-request nonce for a template that
ever needs an inline script: `<script nonce="{{ csp_nonce() }}">`); no inline event handlers or `javascript:` URLs
anywhere. Styles from our stylesheets and `<style nonce="{{ csp_nonce() }}">` blocks (the statement's printed
copy, which travels whole): no template carries a `style` attribute (the preview's and the kiosk card's are
classes), so the policy needs no 'unsafe-inline' for styles either. Images from us and `data:` (QR codes, charts).
Nobody frames a page (`frame-ancestors 'none'`, X-Frame-Options DENY). The campaign preview's kiosk card is a
sandboxed `srcdoc` frame inside the preview page: it has no address of its own, so frame-ancestors and
X-Frame-Options (which apply to a framed reply) do not concern it; it inherits the preview page's policy, which
allows what the card uses (the kiosk stylesheet, same-origin images). The camera is allowed for our own pages only
(the counter scans QR codes with it); every other powerful feature is off.

The JSON API: its replies are never documents, so they get a policy that allows nothing (`default-src 'none'`),
and a `Cache-Control: no-store` when the view set none (tokens and balances stay out of shared caches).

HSTS only in production (DEPLOYMENT = "production") and only on a request that came over HTTPS (directly or, with
TRUSTED_PROXIES, through nginx's X-Forwarded-Proto): the app sends it, nginx does not (deploy/nginx.conf.template),
so there is one source of it. `make run` and the tests run over plain HTTP and never see it.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_talisman import Talisman

SELF, NONE = "'self'", "'none'"
PAGE_POLICY = {
    "default-src": SELF,
    "script-src": SELF,
    "style-src": SELF,
    "img-src": f"{SELF} data:",
    "font-src": SELF,
    "connect-src": SELF,
    "media-src": SELF,
    "object-src": NONE,
    "base-uri": SELF,
    "form-action": SELF,
    "frame-ancestors": NONE,
}
API_POLICY = {"default-src": NONE, "frame-ancestors": NONE, "base-uri": NONE, "form-action": NONE}
# Structured-header syntax: `()` is nobody, `(self)` our own pages.
PERMISSIONS_POLICY = {
    "camera": "(self)",
    "microphone": "()",
    "geolocation": "()",
    "payment": "()",
    "usb": "()",
    "browsing-topics": "()",
}
HSTS_MAX_AGE = 365 * 24 * 3600
API_PREFIX = "/api/"

def init_app(app: Flask) -> None:
    """Set the headers on every reply; call after every blueprint is registered (the API's views get their policy
    by endpoint). One Talisman per app (it keeps its settings on itself), in `app.extensions["talisman"]`."""
    production = app.config["DEPLOYMENT"] == "production"
    app.extensions["talisman"] = Talisman(
        app,
        content_security_policy=PAGE_POLICY,
        content_security_policy_nonce_in=["script-src", "style-src"],
        frame_options="DENY",
        permissions_policy=PERMISSIONS_POLICY,
        referrer_policy="same-origin",
        # nginx redirects http to https at the edge; the app answers what reaches it (health checks on loopback).
        force_https=False,
        strict_transport_security=production,
        strict_transport_security_max_age=HSTS_MAX_AGE,
        strict_transport_security_include_subdomains=False,  # other hosts of the metro's domain are not ours
        # The cookie settings stay core.config's (Secure in production only, SameSite=Lax, HttpOnly).
        session_cookie_secure=False,
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
        session_cookie_http_only=app.config["SESSION_COOKIE_HTTPONLY"],
    )
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API_PREFIX):
            app.view_functions[rule.endpoint].talisman_view_options = {
                "content_security_policy": API_POLICY, "content_security_policy_nonce_in": []}
    app.after_request(_api_cache_control)


def _api_cache_control(response: Response) -> Response:
    """An API reply without its own caching rule is not stored by any cache."""
    if request.path.startswith(API_PREFIX) and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response
