"""Configuration: defaults in code, the environment on top, and a refusal to run production on a default secret."""

from __future__ import annotations

import os
from typing import Any

DEFAULT_SECRET_KEY = "dev-only-not-a-secret"


class DefaultConfig:
    """Defaults for a local run: SQLite in the instance folder and jobs run inline."""

    SECRET_KEY = DEFAULT_SECRET_KEY
    # `development` or `production`; production refuses a default or short secret.
    DEPLOYMENT = "development"
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}
    REDIS_URL: str | None = None
    # Prefix for rq queue names and rate-limit keys, so two deployments can share one Redis.
    QUEUE_PREFIX = "metropoints"
    JOB_TIMEOUT_SECONDS = 1800
    BABEL_DEFAULT_LOCALE = "zh"
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    LANGUAGES = ("zh", "en")
    RIDER_TOKEN_DAYS = 30
    LOGIN_RATE_LIMIT = "10 per minute"
    # Trip feed: rows per API call, rows per chunk of a file import.
    TRIPS_MAX_PER_CALL = 10_000
    TRIPS_CHUNK_ROWS = 20_000
    # Held trips are credited when their reference is linked, this many days back at most.
    HELD_TRIP_DAYS = 30
    WTF_CSRF_TIME_LIMIT = None
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_HTTPONLY = True


def load_config(app, test_config: dict[str, Any] | None = None) -> None:
    """Fill `app.config`: defaults, then DATABASE_URL / REDIS_URL / SECRET_KEY, then FLASK_* variables, then tests."""
    app.config.from_object(DefaultConfig)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{os.path.join(app.instance_path, 'metropoints.sqlite')}"
    if os.environ.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(os.environ["DATABASE_URL"])
    if os.environ.get("REDIS_URL"):
        app.config["REDIS_URL"] = os.environ["REDIS_URL"]
    if os.environ.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
    app.config.from_prefixed_env()
    if test_config:
        app.config.update(test_config)
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    check_production_secret(app.config)
    if app.config["DEPLOYMENT"] == "production":
        # Behind TLS in production: the session and remember-me cookies never travel in clear text.
        app.config["SESSION_COOKIE_SECURE"] = app.config["REMEMBER_COOKIE_SECURE"] = True


def normalise_database_url(url: str) -> str:
    """Point plain `postgres://` / `postgresql://` URLs at the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def check_production_secret(config) -> None:
    """Refuse to start a production deployment with the default, or a guessably short, secret key."""
    if config.get("DEPLOYMENT") != "production":
        return
    secret = config.get("SECRET_KEY") or ""
    if secret == DEFAULT_SECRET_KEY or len(secret) < 32:
        raise RuntimeError(
            "Refusing to start in production: set SECRET_KEY in the environment to a random value of 32+ characters."
        )
