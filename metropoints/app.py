"""The application factory: configuration, extensions, each package's blueprints and commands, error handling."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from flask import Flask, render_template, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from metropoints import demo
from metropoints.accrual import cli as accrual_cli
from metropoints.accrual import queries as accrual_queries
from metropoints.accrual.rules import current_rules
from metropoints.campaigns import cli as campaign_cli
from metropoints.campaigns import panels as campaign_panels
from metropoints.campaigns import soldout
from metropoints.campaigns import views as campaign_views
from metropoints.core import (
    account_views,
    fastpath,
    lean,
    security,
    templating,
    token_cache,
    token_views,
    twofactor_views,
)
from metropoints.core import cli as core_cli
from metropoints.core import views as core_views
from metropoints.core.api import domain_error_reply, error_reply
from metropoints.core.config import load_config
from metropoints.core.db import commit_unit_of_work, db, migrate, rollback_unit_of_work
from metropoints.core.errors import DomainError
from metropoints.core.extensions import babel, csrf, limiter, login_manager, mail, select_locale, view_is_limited
from metropoints.core.portal import message_for, nav_for, role_label
from metropoints.core.urls import IdConverter
from metropoints.kiosk import api as kiosk_api
from metropoints.kiosk import cli as kiosk_cli
from metropoints.kiosk import queries as kiosk_queries
from metropoints.kiosk import views as kiosk_views
from metropoints.marketplace import cli as marketplace_cli
from metropoints.marketplace import views as marketplace_views
from metropoints.redemption import cli as redemption_cli
from metropoints.redemption import panels as redemption_panels
from metropoints.redemption import views as redemption_views
from metropoints.reports import cli as reports_cli
from metropoints.reports import methodology_views
from metropoints.reports import modes as report_modes
from metropoints.reports import views as report_views
from metropoints.riders_api import api as riders_api
from metropoints.riders_api import methodology as methodology_api
from metropoints.settlement import cli as settlement_cli
from metropoints.settlement import panels as settlement_panels
from metropoints.settlement import views as settlement_views
from metropoints.settlement import webhooks as settlement_webhooks

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type", 429: "rate_limited"}
# What an error page says, by status, in the page's language (werkzeug's and the limiter's descriptions are English).
HTTP_PAGE_MESSAGES = {
    400: _l("The request could not be read, or the form has expired. Please go back, reload the page and try again."),
    401: _l("Please log in first."),
    403: _l("This account may not open this page."),
    404: _l("This page does not exist, or no longer does."),
    405: _l("This page cannot be opened that way."),
    410: _l("This is gone and cannot be used any more."),
    413: _l("What you sent is too large."),
    415: _l("This kind of file cannot be accepted."),
    429: _l("Too many attempts in a short time. Please wait a minute and try again."),
}
SERVER_ERROR_MESSAGE = _l("Something went wrong on our side. Please try again in a little while.")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the platform: every package registers its blueprints and commands here."""
    app = Flask(__name__.split(".")[0], instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    load_config(app, test_config)
    app.json.sort_keys = False  # replies keep the contract's field order

    app.url_map.converters["id"] = IdConverter  # before any blueprint's rules are bound
    db.init_app(app)
    token_cache.init_app(app)
    soldout.init_app(app)  # the flash sale's sold-out marks (Redis)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    login_manager.login_message = _l("Please log in to open this page.")
    login_manager.localize_callback = str  # the lazy message, translated when flashed
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", app.config["QUEUE_PREFIX"])
    limiter.init_app(app)
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["nav_for"] = nav_for
    app.jinja_env.globals["role_label"] = role_label
    templating.init_app(app)
    mail.init_app(app)

    for blueprint in (core_views.bp, account_views.bp, twofactor_views.bp, marketplace_views.bp, campaign_views.bp,
                      report_views.bp, report_modes.bp, methodology_views.bp, riders_api.bp, methodology_api.bp,
                      kiosk_api.bp, kiosk_views.bp, redemption_views.counter_bp, redemption_views.activity_bp,
                      settlement_webhooks.bp, settlement_views.bp, token_views.bp):
        app.register_blueprint(blueprint)
    security.init_app(app)  # after the blueprints: the API's views get the API's headers
    for package_panels in (campaign_panels, redemption_panels, settlement_panels):
        package_panels.register()  # what they show on the marketplace's pages (core/panels.py)
    for package_queries in (accrual_queries, kiosk_queries):
        package_queries.register_token_names()  # whose a partner's or kiosk's token is (core/token_queries.py)
    csrf.exempt(riders_api.bp)  # bearer tokens, not cookies: nothing for a forged form to ride on
    csrf.exempt(kiosk_api.bp)
    csrf.exempt(settlement_webhooks.bp)  # signed by the provider (Stripe-Signature), not a browser form
    for package_cli in (core_cli, accrual_cli, marketplace_cli, campaign_cli, redemption_cli, kiosk_cli,
                        settlement_cli, reports_cli):
        package_cli.register(app)
    demo.register(app)
    core_views.show_rules_on_front_page(_rules_in_force)
    _register_unit_of_work(app)
    _register_error_handlers(app)
    lean.init_app(app, limiter=limiter, login_manager=login_manager, limited=view_is_limited)  # last: every hook is in
    fastpath.init_app(app, riders_api.FAST_ENDPOINTS)  # in front of Flask, once every view and hook is in
    proxies = int(app.config["TRUSTED_PROXIES"])
    if proxies:  # outermost, so the fast path sees the client's scheme as Flask does
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]
    return app


def _rules_in_force() -> dict[str, object]:
    """The accrual rules in force, as the front page quotes them: points per km, the daily cap, g CO2e per km."""
    version = current_rules()
    return {"points_per_km": Decimal(version.points_per_km_milli) / 1000, "daily_cap": version.daily_cap,
            "co2e_g_per_km": Decimal(version.co2e_mg_per_km) / 1000}


def _register_unit_of_work(app: Flask) -> None:
    """One commit per request, after the handler succeeded; jobs are handed over only after it."""

    @app.after_request
    def finish_unit_of_work(response):
        if response.status_code < 400:
            commit_unit_of_work()
        else:
            rollback_unit_of_work()
        return response


def wants_json() -> bool:
    """API paths answer in JSON; pages in HTML."""
    return request.path.startswith("/api/")


def _register_error_handlers(app: Flask) -> None:
    """Domain errors and HTTP errors become the contract's JSON errors on the API and pages elsewhere."""

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        rollback_unit_of_work()
        if wants_json():
            return domain_error_reply(error)
        return render_template("core/error.html", code=error.code, message=message_for(error)), error.http_status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if wants_json():
            status = error.code or 500
            return error_reply(HTTP_CODES.get(status, "http_error"), error.description or error.name, status)
        message = HTTP_PAGE_MESSAGES.get(error.code or 500, SERVER_ERROR_MESSAGE)
        return render_template("core/error.html", code=error.code, message=message), error.code
