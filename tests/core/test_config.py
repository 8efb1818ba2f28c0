"""Configuration: environment names, and no production start on a default secret."""

from __future__ import annotations

import pytest

from metropoints.app import create_app
from metropoints.core.config import DEFAULT_PAYMENT_KEY, DEFAULT_SECRET_KEY, normalise_database_url

PROVIDER = {"PAYMENT_API_BASE": "https://api.stripe.com", "PAYMENT_API_KEY": "sk_live_" + "k" * 24,
            "PAYMENT_WEBHOOK_SECRET": "whsec_" + "w" * 32}


def test_production_refuses_the_default_secret(tmp_path):
    """A production deployment with the default or a short secret key does not start."""
    for secret in (DEFAULT_SECRET_KEY, "short"):
        with pytest.raises(RuntimeError, match="SECRET_KEY"):
            create_app({"DEPLOYMENT": "production", "SECRET_KEY": secret, **PROVIDER,
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite"})
    app = create_app({"DEPLOYMENT": "production", "SECRET_KEY": "x" * 40, **PROVIDER,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite"})
    assert app.config["DEPLOYMENT"] == "production"
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    assert app.config["SESSION_COOKIE_HTTPONLY"] and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_production_refuses_the_local_payment_provider_keys(tmp_path):
    """Production needs the provider's own key and webhook secret: the local defaults are refused."""
    for missing in ({"PAYMENT_API_KEY": DEFAULT_PAYMENT_KEY}, {"PAYMENT_WEBHOOK_SECRET": ""}):
        with pytest.raises(RuntimeError, match="PAYMENT_API_KEY"):
            create_app({"DEPLOYMENT": "production", "SECRET_KEY": "x" * 40, **PROVIDER, **missing,
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite"})


def test_environment_settings(monkeypatch, tmp_path):
    """DATABASE_URL, REDIS_URL and SECRET_KEY under their common names, the rest as FLASK_<NAME>."""
    monkeypatch.setenv("DATABASE_URL", "postgres://db.example/metro")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/2")
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("PAYMENT_API_KEY", "sk_live_abc")
    monkeypatch.setenv("FLASK_TRIPS_MAX_PER_CALL", "500")
    # The rate limiter is one object per process: keep its storage local, or later apps would call that host.
    monkeypatch.setenv("FLASK_RATELIMIT_STORAGE_URI", "memory://")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db.example/metro"
    assert app.config["REDIS_URL"] == "redis://cache.example:6379/2"
    assert app.config["PAYMENT_API_KEY"] == "sk_live_abc"
    assert app.config["SECRET_KEY"] == "s" * 40 and app.config["TRIPS_MAX_PER_CALL"] == 500
    assert normalise_database_url("sqlite:///x") == "sqlite:///x"


def test_behind_a_trusted_proxy_the_client_address_and_scheme_come_from_it(tmp_path):
    """TRUSTED_PROXIES=1 (behind nginx): X-Forwarded-For / -Proto give the client's address and https; without it
    they are ignored, so a client cannot pick its own address for the rate limit."""
    from flask import request

    for proxies, expected in ((1, "203.0.113.9 https"), (0, "127.0.0.1 http")):
        app = create_app({"TRUSTED_PROXIES": proxies, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite",
                          "RATELIMIT_STORAGE_URI": "memory://"})
        app.add_url_rule("/_whoami", "whoami", lambda: f"{request.remote_addr} {request.scheme}")
        reply = app.test_client().get("/_whoami", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                      headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
        assert reply.get_data(as_text=True) == expected
