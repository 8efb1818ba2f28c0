"""Configuration: defaults in code, the environment on top, and a refusal to run production on a default secret."""

from __future__ import annotations

import os
from typing import Any

DEFAULT_SECRET_KEY = "dev-only-not-a-secret"
DEFAULT_PAYMENT_KEY = "sk_test_local"
DEFAULT_WEBHOOK_SECRET = "whsec_dev_only_not_a_secret"


class DefaultConfig:
    """Defaults for a local run: SQLite in the instance folder and jobs run inline."""

    SECRET_KEY = DEFAULT_SECRET_KEY
    # `development` or `production`; production refuses a default or short secret.
    DEPLOYMENT = "development"
    # No pool_pre_ping: core.db pings only the connections that sat idle in the pool (PING_AFTER_IDLE_SECONDS).
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {}
    REDIS_URL: str | None = None
    # A streaming replica for the reads that may be seconds stale (core/replica.py); None reads everything from the
    # primary. Past REPLICA_MAX_LAG_SECONDS behind, or unreachable, it is left aside until a check finds it fit
    # again; its state is checked at most every REPLICA_CHECK_SECONDS per process.
    REPLICA_DATABASE_URL: str | None = None
    REPLICA_MAX_LAG_SECONDS = 10.0
    REPLICA_CHECK_SECONDS = 1.0
    # Prefix for rq queue names and rate-limit keys, so two deployments can share one Redis.
    QUEUE_PREFIX = "metropoints"
    JOB_TIMEOUT_SECONDS = 1800
    BABEL_DEFAULT_LOCALE = "zh"
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    LANGUAGES = ("zh", "en")
    RIDER_TOKEN_DAYS = 30
    # Failed portal logins: per account (the e-mail typed) and, higher so colleagues behind one address are not
    # locked out by one of them, per address. The API's login endpoints use LOGIN_RATE_LIMIT per address.
    LOGIN_RATE_LIMIT = "10 per minute"
    LOGIN_ADDRESS_RATE_LIMIT = "60 per minute"
    # E-mail (Flask-Mail's settings; FLASK_MAIL_* in the environment) and the address links in mails point at.
    MAIL_SERVER = "localhost"
    MAIL_PORT = 25
    MAIL_USE_TLS = False
    MAIL_USE_SSL = False
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_DEFAULT_SENDER = "Metro carbon points <noreply@metropoints.example>"
    PUBLIC_URL = "http://127.0.0.1:5000"
    # Development only (`make run`): where devtools/mail_catcher.py keeps what it received, shown on the mail page.
    MAIL_CATCHER_DIR: str | None = None
    PASSWORD_RESET_SECONDS = 3600
    # Trip feed: rows per API call, rows per chunk of a file import.
    TRIPS_MAX_PER_CALL = 10_000
    TRIPS_CHUNK_ROWS = 20_000
    # Held trips are credited when their reference is linked, this many days back at most.
    HELD_TRIP_DAYS = 30
    # Green modes: trips that look farmed wait for an operator's review (REVIEW_FARMED_TRIPS): a rider's trips of a
    # day beyond REVIEW_TRIPS_PER_DAY, metro trips between the same two stations beyond REVIEW_BACK_AND_FORTH, trips
    # overlapping in time. A bus row without distance_m on a line without an average gets BUS_DEFAULT_TRIP_M.
    REVIEW_FARMED_TRIPS = True
    REVIEW_TRIPS_PER_DAY = 8
    REVIEW_BACK_AND_FORTH = 3
    BUS_DEFAULT_TRIP_M = 5000
    # PostgreSQL: trips and ledger entries are partitioned by month; `flask db upgrade` and a daily job create the
    # partitions of this many months after the current one.
    PARTITION_MONTHS_AHEAD = 3
    WTF_CSRF_TIME_LIMIT = None
    # Settlement. The payment provider speaks Stripe's API; locally and in tests it is localstripe on loopback
    # (`python -m metropoints.settlement.localstripe_server`), which takes any key starting with sk_test_.
    PAYMENT_API_BASE = "http://127.0.0.1:8420"
    PAYMENT_API_KEY = DEFAULT_PAYMENT_KEY
    PAYMENT_WEBHOOK_SECRET = DEFAULT_WEBHOOK_SECRET
    PAYMENT_API_VERSION = "2020-08-27"  # pinned: invoices take the customer's pending invoice items
    PAYMENT_TIMEOUT_SECONDS = 10
    PAYMENT_WEBHOOK_TOLERANCE_SECONDS = 300  # a signed event older (or newer) than this is refused
    SETTLEMENT_CURRENCY = "cny"
    SETTLEMENT_DEFAULT_FEE_FEN = 200  # per used coupon, for merchants without a fee plan
    SETTLEMENT_DAYS_DUE = 15  # an issued statement is overdue after this many days
    # Seconds before each retry of a statement's invoicing after a provider error or timeout (rq's backoff).
    SETTLEMENT_RETRY_BACKOFF = (10, 30, 120, 300, 1200)
    # The platform that bills the merchants, as statements and their printed copies name it (FLASK_PLATFORM_* in
    # the environment). An empty setting is left off the statement.
    PLATFORM_NAME = "沈阳地铁碳积分平台 / Shenyang Metro Carbon Points"
    PLATFORM_LEGAL_NAME = "沈阳地铁集团有限公司"
    PLATFORM_ADDRESS = "辽宁省沈阳市"
    PLATFORM_TAX_ID = ""  # the operator's unified social credit code (统一社会信用代码)
    PLATFORM_CONTACT_EMAIL = "billing@metropoints.example"
    # How many proxies (nginx, a load balancer) stand in front of the app and set X-Forwarded-*: 0 trusts none.
    # Behind nginx (deploy/nginx.conf.template) it must be 1, or every client looks like 127.0.0.1 to the login
    # rate limit and https links are made as http.
    TRUSTED_PROXIES = 0
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_HTTPONLY = True
    # Portal sessions (core.sessions): ended after this long without a request, and this long after the sign-in,
    # whatever happens; the metro team's accounts (operators) hold the keys to the money, so theirs end sooner.
    SESSION_IDLE_SECONDS_OPERATOR = 30 * 60
    SESSION_IDLE_SECONDS = 8 * 3600
    SESSION_LIFETIME_SECONDS_OPERATOR = 12 * 3600
    SESSION_LIFETIME_SECONDS = 7 * 86400
    # Moving money or points asks for the second factor (or the password) again when its last check is older.
    STEP_UP_SECONDS = 600
    # Between the password and the second factor's code: how long the half-signed-in state lasts.
    SIGNIN_PENDING_SECONDS = 300
    # The name authenticator apps show beside the account (the otpauth URI's issuer).
    TWO_FACTOR_ISSUER = "沈阳地铁碳积分"


def load_config(app, test_config: dict[str, Any] | None = None) -> None:
    """Fill `app.config`: defaults, then DATABASE_URL / REDIS_URL / SECRET_KEY, then FLASK_* variables, then tests."""
    app.config.from_object(DefaultConfig)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{os.path.join(app.instance_path, 'metropoints.sqlite')}"
    if os.environ.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(os.environ["DATABASE_URL"])
    if os.environ.get("REPLICA_DATABASE_URL"):
        app.config["REPLICA_DATABASE_URL"] = os.environ["REPLICA_DATABASE_URL"]
    if os.environ.get("REDIS_URL"):
        app.config["REDIS_URL"] = os.environ["REDIS_URL"]
    for name in ("SECRET_KEY", "PAYMENT_API_BASE", "PAYMENT_API_KEY", "PAYMENT_WEBHOOK_SECRET"):
        if os.environ.get(name):
            app.config[name] = os.environ[name]
    app.config.from_prefixed_env()
    if test_config:
        app.config.update(test_config)
    app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if app.config.get("REPLICA_DATABASE_URL"):
        app.config["REPLICA_DATABASE_URL"] = normalise_database_url(app.config["REPLICA_DATABASE_URL"])
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
    if config.get("PAYMENT_API_KEY") in (None, "", DEFAULT_PAYMENT_KEY) or \
            config.get("PAYMENT_WEBHOOK_SECRET") in (None, "", DEFAULT_WEBHOOK_SECRET):
        raise RuntimeError("Refusing to start in production: set PAYMENT_API_BASE, PAYMENT_API_KEY and "
                           "PAYMENT_WEBHOOK_SECRET to the payment provider's values.")
