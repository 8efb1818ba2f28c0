"""History benchmark: the pages people open every day, on a small and on a big history, and the ratio of the two.

    python bench/history.py [--small 50000] [--big 5000000] [--riders 345000] [--coupons 58000] [--repeat 3]
                            [--accrual 100000] [--workers 2] [--threads 2]

For each size, a fresh database (migrated, stations loaded) gets a history built set-wise in SQL, not through the
app: riders (each with a welcome credit in December of the year before), credited trips over the last 365 days with
a ledger entry each, 275 approved merchants with a store, 606 campaigns, coupons bought, used, cancelled and expired
over the year, audit entries; then the rollups are rebuilt from those rows (`flask reports rebuild`, as the
migration fills them), the tables analysed and a checkpoint taken (needs a superuser). The app runs under granian
(its kiosk caches off, so every feed is a first build) and each path is timed over HTTP, best of `--repeat`: the KPI
page (30 and 365 days), the kiosk feed, the owner's activity page and CSV, the audit log, rider /me, /me/trips,
/me/ledger, the catalogue; from the CLI the month's settlement run and the year-end expiry (each including the CLI's
start-up); and the accrual rate of `--accrual` new trips (in process, batches of 10,000). Both histories are built
first and the sizes then take turns (request by request, CLI run by CLI run, accrual batch by batch), so a spell of
load on the shared machine falls on both. Prints every figure at both sizes and their ratio. Targets: every ratio <=
1.5; the KPI page <= 300 ms on the big history; accrual on the big history >= 0.8x its rate on the small one.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import timedelta

import psycopg
import pyotp
import redis
from common import BIN, ROOT, fresh_database, serve

from metropoints.accrual.operations import get_partner, receive_trips
from metropoints.app import create_app
from metropoints.core import twofactor
from metropoints.core.db import commit_unit_of_work
from metropoints.core.models import Role, TokenKind
from metropoints.core.operations import create_user, issue_token
from metropoints.core.timeutil import SERVICE_OFFSET, utcnow
from metropoints.kiosk.operations import create_kiosk

PASSWORD = "bench-password"
MERCHANTS, CAMPAIGNS = 275, 606
WELCOME = 50  # points each rider is credited on joining
STATION = "0119"
PATHS = {  # name: (path, who)
    "KPI page, 30 days": ("/backoffice/?days=30", "operator"),
    "KPI page, 365 days": ("/backoffice/?days=365", "operator"),
    "kiosk feed, first build": ("/api/v1/kiosk/feed", "kiosk"),
    "owner's activity page": ("/portal/activity", "owner"),
    "owner's activity CSV": ("/portal/activity.csv", "owner"),
    "audit log": ("/backoffice/audit", "operator"),
    "rider /me": ("/api/v1/me", "rider"),
    "rider /me/trips": ("/api/v1/me/trips", "rider"),
    "rider /me/ledger": ("/api/v1/me/ledger", "rider"),
    "catalogue": ("/api/v1/catalog", "public"),
}

HISTORY_SQL = [
    # Riders, each with a fare card, registered over the last 400 days.
    "INSERT INTO riders (phone, password_hash, display_name, points_balance, created_at) "
    "SELECT '16' || lpad(g::text, 9, '0'), 'x', 'r' || g, 0, now() - (g %% 400) * interval '1 day' "
    "FROM generate_series(1, %(riders)s) g",
    "INSERT INTO rider_links (rider_id, source, ref, created_at) SELECT id, 'afc', 'card-' || id, now() FROM riders",
    # Credited trips spread evenly over the last 365 days, 6.065 km each on line 1, and their ledger entries.
    "INSERT INTO trips (source, trip_id, batch_id, rider_ref, rider_id, entry_station, exit_station, entered_at, "
    "exited_at, service_day, distance_m, rule_version_id, points, co2e_grams, status, credited_at) "
    "SELECT 'hist', 'h' || g, 0, 'card-' || r, r, '0109', '0114', ex - interval '20 minutes', ex, "
    "CAST(timezone('Asia/Shanghai', ex) AS date), 6065, 1, 6, 267, 'credited', ex FROM ("
    "SELECT g, 1 + g %% %(riders)s AS r, now() - interval '2 hours' - (g::float8 / %(trips)s) * interval '365 days' "
    "AS ex FROM generate_series(1, %(trips)s) g) s",
    # Every rider starts with a welcome credit in December of the year before, so at both sizes the year-end expiry
    # has the same 345,000 riders' old points to expire: its figure compares history, not how many riders the
    # small history happens to reach (50,000 trips touch 50,000 of them).
    "INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after) "
    f"SELECT id, w, CAST(w AS date), {WELCOME}, 'adjustment', '', 'welcome credit', 'bench', {WELCOME} FROM riders, "
    "(SELECT date_trunc('year', now()) - interval '1 month' AS w) d",
    "INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, trip_pk, rule_version_id, ref, reason, actor, "
    "balance_after) SELECT rider_id, exited_at, service_day, points, 'trip', id, 1, source || ':' || trip_id, '', '', "
    f"{WELCOME} + SUM(points) OVER (PARTITION BY rider_id ORDER BY id) FROM trips",
    "UPDATE riders SET points_balance = s.total FROM (SELECT rider_id, SUM(points) AS total FROM ledger_entries "
    "GROUP BY rider_id) s WHERE riders.id = s.rider_id",
    # Merchants, each with its owner, a store and campaigns; coupons over the year in every state.
    "INSERT INTO users (email, password_hash, role, display_name, active, created_at) "
    "SELECT 'owner' || g || '@history.bench', 'x', 'merchant_owner', 'owner ' || g, true, now() "
    "FROM generate_series(1, %(merchants)s) g",
    "INSERT INTO merchants (name, category, contact_name, contact_phone, licence_no, status, decision_reason, "
    "owner_id, applied_at, decided_at) SELECT 'Shop ' || u.id, 'dining', 'x', '13900000000', 'LIC' || u.id, "
    "'approved', '', u.id, now() - interval '400 days', now() - (u.id % 365) * interval '1 day' "
    "FROM users u WHERE u.role = 'merchant_owner'",
    "INSERT INTO staff_members (user_id, merchant_id, is_owner, invited_at, accepted_at) "
    "SELECT owner_id, id, true, now(), now() FROM merchants",
    "INSERT INTO stores (merchant_id, name, address, station_id, opening_hours, active, created_at) "
    f"SELECT id, 'Store ' || id, 'Zhongjie', '{STATION}', '', true, now() FROM merchants",
    "INSERT INTO campaigns (merchant_id, status, title, description, category, benefit_type, face_value_fen, "
    "point_price, stock_total, stock_left, per_rider_limit, valid_from, valid_until, coupon_valid_days, terms, "
    "image_name, decision_reason, created_at, decided_at) "
    "SELECT 1 + g %% %(merchants)s, 'approved', 'Campaign ' || g, '', 'dining', 'voucher', 2000, 20 + g %% 50, "
    "100000, 100000, 1000, now() - interval '370 days', now() + interval '30 days', 30, '', '', '', "
    "now() - interval '370 days', now() - (g %% 365) * interval '1 day' FROM generate_series(1, %(campaigns)s) g",
    "INSERT INTO campaign_stores (campaign_id, store_id) SELECT c.id, s.id FROM campaigns c "
    "JOIN stores s ON s.merchant_id = c.merchant_id",
    "INSERT INTO coupons (campaign_id, rider_id, code, counter_code, status, points_spent, issued_at, expires_at, "
    "used_at, used_store_id, cancelled_at, expired_at) "
    "SELECT c.id, 1 + g %% %(riders)s, 'H-' || g, lpad(g::text, 12, '0'), st, c.point_price, at, "
    "at + interval '30 days', CASE WHEN st = 'used' THEN at + interval '2 days' END, "
    "CASE WHEN st = 'used' THEN s.id END, "
    "CASE WHEN st = 'cancelled' THEN at + interval '1 day' END, "
    "CASE WHEN st = 'expired' THEN at + interval '30 days' END FROM ("
    "SELECT g, 1 + g %% %(campaigns)s AS cid, now() - interval '1 hour' - (g::float8 / %(coupons)s) * "
    "interval '365 days' AS at, (ARRAY['used', 'used', 'used', 'used', 'cancelled', 'expired', 'expired', "
    "'issued', 'used', 'issued'])[1 + g %% 10] AS st FROM generate_series(1, %(coupons)s) g) x "
    "JOIN campaigns c ON c.id = x.cid JOIN stores s ON s.merchant_id = c.merchant_id",
    "UPDATE coupons SET status = 'expired', expired_at = expires_at WHERE status = 'issued' AND expires_at <= now()",
    "INSERT INTO audit_log (at, actor_label, action, subject, reason) SELECT now() - g * interval '10 minutes', "
    "'ops@history.bench', (ARRAY['campaign.approve', 'merchant.approve', 'points.adjust'])[1 + g %% 3], "
    "'campaign:' || (1 + g %% %(campaigns)s), '' FROM generate_series(1, 20000) g",
    "INSERT INTO partners (name, created_at) VALUES ('afc', now())",
]


# The settlement run queues each statement's invoicing (a provider call) on rq, as in production; the bench gives
# it a Redis database of its own, emptied before and after, and no worker: the figure is the run, not the provider.
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def flask(url: str, *args: str, redis_url: str | None = None) -> float:
    """Run a CLI command on the database (jobs inline, or queued on `redis_url`); its wall time in seconds (start-up
    included)."""
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-secret-" + "x" * 32}
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    started = time.perf_counter()
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=3600)
    return time.perf_counter() - started


def build_history(url: str, *, trips: int, riders: int, coupons: int) -> float:
    """The history, set-wise, then the rollups rebuilt from it and the tables analysed; the seconds it took."""
    started = time.perf_counter()
    params = {"trips": trips, "riders": riders, "coupons": coupons, "merchants": MERCHANTS, "campaigns": CAMPAIGNS}
    with psycopg.connect(url) as conn:
        for sql in HISTORY_SQL:
            conn.execute(sql, params if "%(" in sql else None)
    flask(url, "reports", "rebuild")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        # Flush what the build wrote now, or the checkpoint that follows it slows the timings below.
        conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def accounts(url: str) -> dict[str, str]:
    """An operator (with a second factor, as operators must have) and merchant 1's owner with a known password, a
    rider token (rider 1), a kiosk token, and the operator's TOTP secret."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench-secret-" + "x" * 32})
    secret = pyotp.random_base32()
    with app.app_context():
        operator = create_user(email="ops@history.bench", password=PASSWORD, role=Role.operator)
        twofactor.enrol(user=operator, secret=secret, code=pyotp.TOTP(secret).now(), keep=None)
        rider_token, _ = issue_token(kind=TokenKind.rider, subject_id=1, ttl=timedelta(days=1))
        _, kiosk_token = create_kiosk(station_id=STATION, label="bench", actor_label="bench")
        commit_unit_of_work()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE users SET password_hash = (SELECT password_hash FROM users "
                     "WHERE email = 'ops@history.bench') WHERE email = 'owner1@history.bench'")
    return {"rider": rider_token, "kiosk": kiosk_token, "operator_totp": secret}


def opener_for(base: str, email: str, totp_secret: str | None = None) -> urllib.request.OpenerDirector:
    """An HTTP client logged in to the portal as `email`, with the code of its second factor when it has one (the
    bench app runs without CSRF tokens)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    body = urllib.parse.urlencode({"email": email, "password": PASSWORD}).encode()
    opener.open(base + "/login", data=body, timeout=60).read()
    if totp_secret:
        # The next step's code: the enrolment took the current one, and a code is taken once.
        code = pyotp.TOTP(totp_secret).at(time.time() + 30)
        opener.open(base + "/login/code", data=urllib.parse.urlencode({"code": code}).encode(), timeout=60).read()
    return opener


def time_paths(bases: dict[str, str], tokens: dict[str, dict[str, str]], repeat: int) -> dict[str, dict[str, float]]:
    """Best-of-`repeat` seconds of each path, as its user, at each size; the sizes take turns request by request, so
    a spell of load on the shared machine falls on both."""
    clients = {size: {"operator": opener_for(base, "ops@history.bench", tokens[size]["operator_totp"]),
                      "owner": opener_for(base, "owner1@history.bench"),
                      "public": urllib.request.build_opener()} for size, base in bases.items()}
    figures: dict[str, dict[str, float]] = {size: {} for size in bases}
    for name, (path, who) in PATHS.items():
        for _ in range(repeat):
            for size, base in bases.items():
                headers = {"Authorization": f"Bearer {tokens[size][who]}"} if who in ("rider", "kiosk") else {}
                opener = clients[size].get(who, clients[size]["public"])
                started = time.perf_counter()
                with opener.open(urllib.request.Request(base + path, headers=headers), timeout=600) as reply:
                    reply.read()
                    assert reply.status == 200, (path, reply.status)
                figures[size][name] = min(figures[size].get(name, float("inf")), time.perf_counter() - started)
    return figures


def accrual_rates(urls: dict[str, str], count: int, riders: int) -> dict[str, float]:
    """Trips per second through the partner feed's code, in batches of 10,000, on top of each history; the sizes
    take turns batch by batch."""
    apps = {size: create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench-secret-" + "x" * 32,
                              "TRIPS_MAX_PER_CALL": 10_000}) for size, url in urls.items()}
    end = utcnow().astimezone(SERVICE_OFFSET).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=1)
    rows = [{"trip_id": f"new{n}", "source": "afc", "rider_ref": f"card-{1 + n % riders}", "entry_station": "0109",
             "exit_station": "0114", "entered_at": (end - timedelta(minutes=20 + n % 600)).isoformat(),
             "exited_at": (end - timedelta(minutes=n % 600)).isoformat()} for n in range(count)]
    spent = dict.fromkeys(urls, 0.0)
    for start in range(0, count, 10_000):
        for size, app in apps.items():
            with app.app_context():
                partner = get_partner("afc")
                started = time.perf_counter()
                receive_trips(partner=partner, payload={"trips": rows[start:start + 10_000]})
                commit_unit_of_work()
                spent[size] += time.perf_counter() - started
    return {size: count / seconds for size, seconds in spent.items()}


def run_sizes(sizes: dict[str, int], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Every figure on both histories, side by side: both are built first, then each figure is taken on one and
    straight after on the other."""
    with fresh_database("mp_history_small") as small_url, fresh_database("mp_history_big") as big_url:
        urls = {"small": small_url, "big": big_url}
        for size, url in urls.items():
            built = build_history(url, trips=sizes[size], riders=args.riders, coupons=args.coupons)
            print(f"  {sizes[size]:,} trips: history built and rolled up in {built:.0f} s", flush=True)
        tokens = {size: accounts(url) for size, url in urls.items()}
        env = {"FLASK_WTF_CSRF_ENABLED": "false", "FLASK_KIOSK_FEED_TTL_SECONDS": "0",
               "FLASK_KIOSK_CITY_TTL_SECONDS": "0"}
        with serve(small_url, workers=args.workers, threads=args.threads, pool=args.threads,
                   extra_env=env) as (small_base, _), \
                serve(big_url, workers=args.workers, threads=args.threads, pool=args.threads,
                      extra_env=env) as (big_base, _):
            figures = time_paths({"small": small_base, "big": big_base}, tokens, args.repeat)
        period = (utcnow().astimezone(SERVICE_OFFSET).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        for size, url in urls.items():
            redis.Redis.from_url(BENCH_REDIS).flushdb()
            figures[size]["settlement run (CLI)"] = flask(url, "settlement", "run", "--period", period,
                                                          redis_url=BENCH_REDIS)
        redis.Redis.from_url(BENCH_REDIS).flushdb()
        for size, url in urls.items():
            figures[size]["year-end expiry (CLI)"] = flask(url, "points", "expire", "--year", str(utcnow().year))
            with psycopg.connect(url) as conn:
                expired = conn.execute("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'expiry'").fetchone()[0]
            print(f"  {sizes[size]:,} trips: the year-end expiry expired the points of {expired:,} riders", flush=True)
        for size, rate in accrual_rates(urls, args.accrual, args.riders).items():
            figures[size]["accrual, trips/s"] = rate
    return figures


def main() -> int:
    """Run both sizes and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument("--big", type=int, default=5_000_000)
    parser.add_argument("--riders", type=int, default=345_000)
    parser.add_argument("--coupons", type=int, default=58_000)
    parser.add_argument("--accrual", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    figures = run_sizes({"small": args.small, "big": args.big}, args)
    small, big = figures["small"], figures["big"]
    print(f"\n| figure | {args.small:,} trips | {args.big:,} trips | ratio |\n| --- | --- | --- | --- |")
    failed = []
    for name in small:
        rate = name.endswith("/s")
        ratio = big[name] / small[name]
        shown = [f"{v:,.0f}" if rate else f"{v * 1000:,.0f} ms" for v in (small[name], big[name])]
        print(f"| {name} | {shown[0]} | {shown[1]} | ×{ratio:.2f} |")
        if (rate and ratio < 0.8) or (not rate and ratio > 1.5):
            failed.append(name)
    if big["KPI page, 30 days"] > 0.3:
        failed.append("KPI page over 300 ms on the big history")
    print("\ntargets met" if not failed else "\ntargets missed: " + "; ".join(failed))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
