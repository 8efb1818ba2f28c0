"""Kiosk feed benchmark: feed requests/s with and without If-None-Match, beside nginx serving the same JSON.

    python bench/kiosk_feed.py [--campaigns 30] [--connections 32] [--seconds 10] [--server granian|gunicorn]
                               [--workers 2] [--threads 4] [--worker-class gthread]
                               [--redis redis://127.0.0.1:6379/0] [--feed-ttl SECONDS] [--token-ttl SECONDS]

A fresh PostgreSQL database gets a catalogue of live campaigns (some featured at the kiosk's station) and a kiosk
(`flask kiosks create`). The app runs under granian (or `--server gunicorn`); nginx, started on loopback from a
temporary prefix, serves the feed's JSON as a static file. wrk measures, in one run: the feed (200 with a body), the
feed revalidated with If-None-Match (304), and nginx. Target: the app's feed at >= 30% of nginx's rate.

The app runs with its kiosk caches as deployed (the station's feed and the kiosk token each kept 5 s; in process
memory, or shared through Redis with --redis); --feed-ttl 0 --token-ttl 0 measures the uncached feed. One worker
per core by default: a cached poll is pure Python work, so more processes than cores only take turns on them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
from common import BIN, ROOT, SERVERS, free_port, fresh_database, serve, wrk
from flash_sale import seed

STATION = "0119"


def add_catalogue(url: str, campaigns: int) -> None:
    """More live campaigns like the seeded one, and features at the kiosk's station for a few."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO campaigns (merchant_id, status, title, description, category, benefit_type, face_value_fen,"
            " point_price, stock_total, stock_left, per_rider_limit, valid_from, valid_until, coupon_valid_days,"
            " terms, image_name, decision_reason, created_at) SELECT c.merchant_id, 'approved', '权益 ' || g, "
            "'每单限用一张', c.category, c.benefit_type, c.face_value_fen, c.point_price, 500, 500, 1, c.valid_from,"
            " c.valid_until, 14, '不找零', '', '', now() FROM campaigns c, generate_series(2, %s) g", (campaigns,))
        conn.execute("INSERT INTO campaign_stores (campaign_id, store_id) SELECT c.id, s.id FROM campaigns c, stores s "
                     "ON CONFLICT DO NOTHING")
        user = conn.execute("SELECT id FROM users LIMIT 1").fetchone()[0]
        conn.execute("INSERT INTO campaign_features (campaign_id, station_id, created_by, created_at) "
                     "SELECT id, %s, %s, now() FROM campaigns ORDER BY id LIMIT 3", (STATION, user))


def kiosk_token(url: str) -> str:
    """`flask kiosks create` for the station; the token it prints on its last line."""
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-secret-" + "x" * 32}
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "kiosks", "create", STATION], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip().splitlines()[-1].split()[-1]


def nginx(root: Path):
    """nginx on a free loopback port serving `root`; (base URL, process)."""
    port = free_port()
    prefix = Path(tempfile.mkdtemp(prefix="mp-nginx-"))
    (prefix / "logs").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes 2; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off; default_type application/json; sendfile on; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{port}; root {root}; etag on; }} }}
""")
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"])
    time.sleep(0.5)
    return f"http://127.0.0.1:{port}", process, prefix


def nginx_in_front(upstream: str):
    """nginx on a free loopback port, configured by deploy/nginx.conf.template, in front of the app at `upstream`;
    (base URL, process, prefix)."""
    port = free_port()
    prefix = Path(tempfile.mkdtemp(prefix="mp-nginx-front-"))
    prefix.chmod(0o755)  # nginx's workers (not root) reach the cache below it
    (prefix / "logs").mkdir()
    site = (ROOT / "deploy" / "nginx.conf.template").read_text()
    # What `envsubst '${LISTEN} ${UPSTREAM} ${CACHE_DIR} ${STATIC_ROOT}'` does: only these four; nginx's own $vars stay.
    for name, value in (("LISTEN", f"127.0.0.1:{port}"), ("UPSTREAM", upstream.removeprefix("http://")),
                        ("CACHE_DIR", str(prefix / "cache")), ("STATIC_ROOT", str(ROOT / "metropoints" / "static"))):
        site = site.replace("${" + name + "}", value)
    (prefix / "site.conf").write_text(site)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes 2; pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off; default_type application/octet-stream; keepalive_requests 100000;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  include {prefix}/site.conf; }}
""")
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"])
    time.sleep(0.5)
    return f"http://127.0.0.1:{port}", process, prefix


def status_of(url: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
    """(status, X-Cache, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as reply:
            return reply.status, reply.headers.get("X-Cache", ""), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("X-Cache", ""), error.read()


def check_front(base: str, token: str, etag: str, feed: dict) -> None:
    """Before measuring: through nginx the kiosk gets its feed, then a cached copy, a 304 for its ETag; an unknown
    token is refused every time (never a cached feed)."""
    url = base + "/api/v1/kiosk/feed"
    first = status_of(url, {"Authorization": f"Bearer {token}"})
    second = status_of(url, {"Authorization": f"Bearer {token}"})
    revalidated = status_of(url, {"Authorization": f"Bearer {token}", "If-None-Match": etag})
    assert first[0] == 200 and json.loads(first[2])["station"] == feed["station"], first[:2]
    assert second[:2] == (200, "HIT") and second[2] == first[2], second[:2]
    assert revalidated[0] == 304, revalidated[:2]
    for _ in range(2):
        assert status_of(url, {"Authorization": "Bearer ki_not_a_token"})[:2] == (401, "MISS")
    print("via nginx: 200 then HIT, 304 for the ETag, an unknown token 401 each time (not cached)", flush=True)


def main() -> None:
    """Seed, serve, measure the three, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--server", choices=SERVERS, default="granian")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn's worker class (with --server gunicorn)")
    parser.add_argument("--redis", help="share the feed cache through this Redis (FLASK_REDIS_URL)")
    parser.add_argument("--feed-ttl", type=float, help="KIOSK_FEED_TTL_SECONDS (default: the app's)")
    parser.add_argument("--token-ttl", type=float, help="KIOSK_TOKEN_TTL_SECONDS (default: the app's)")
    args = parser.parse_args()
    extra_env = {"FLASK_QUEUE_PREFIX": f"mp-bench-{os.getpid()}"}
    if args.redis:
        extra_env["FLASK_REDIS_URL"] = args.redis  # common.serve drops REDIS_URL itself
    for setting, value in (("FLASK_KIOSK_FEED_TTL_SECONDS", args.feed_ttl),
                           ("FLASK_KIOSK_TOKEN_TTL_SECONDS", args.token_ttl)):
        if value is not None:
            extra_env[setting] = str(value)
    kind = f"{args.worker_class} " if args.server == "gunicorn" else ""
    print(f"{args.server}: {args.workers} {kind}workers x {args.threads} threads; "
          f"{', '.join(f'{k}={v}' for k, v in extra_env.items())}", flush=True)
    with fresh_database("mp_bench_kiosk") as url:
        seed(url, riders=100, stock=500)
        add_catalogue(url, args.campaigns)
        token = kiosk_token(url)
        auth = f"Authorization: Bearer {token}"
        with serve(url, server=args.server, workers=args.workers, threads=args.threads, pool=args.threads,
                   extra_env=extra_env, worker_class=args.worker_class) as (base, _):
            request = urllib.request.Request(base + "/api/v1/kiosk/feed", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as reply:
                body, etag = reply.read(), reply.headers["ETag"]
            feed = json.loads(body)
            static = Path(tempfile.mkdtemp(prefix="mp-static-"))
            (static / "feed.json").write_bytes(body)
            print(f"feed: {len(body):,} bytes, {len(feed['catalog'])} campaigns, {len(feed['featured'])} featured, "
                  f"ETag {etag}", flush=True)
            _, full = wrk(base, script=None, connections=args.connections, duration=args.seconds,
                          headers=(auth,), path="/api/v1/kiosk/feed")
            _, cached = wrk(base, script=None, connections=args.connections, duration=args.seconds,
                            headers=(auth, f"If-None-Match: {etag}"), path="/api/v1/kiosk/feed")
            front_base, front, front_prefix = nginx_in_front(base)
            try:
                check_front(front_base, token, etag, feed)
                _, fronted = wrk(front_base, script=None, connections=args.connections, duration=args.seconds,
                                 headers=(auth,), path="/api/v1/kiosk/feed")
                _, fronted_304 = wrk(front_base, script=None, connections=args.connections, duration=args.seconds,
                                     headers=(auth, f"If-None-Match: {etag}"), path="/api/v1/kiosk/feed")
            finally:
                front.terminate()
                front.wait(timeout=10)
                shutil.rmtree(front_prefix, ignore_errors=True)
        static_base, process, prefix = nginx(static)
        try:
            _, plain = wrk(static_base, script=None, connections=args.connections, duration=args.seconds,
                           path="/feed.json")
        finally:
            process.terminate()
            process.wait(timeout=10)
            shutil.rmtree(prefix, ignore_errors=True)
            shutil.rmtree(static, ignore_errors=True)
    print("\n==== summary ====")
    for label, figures in (("feed, full body (200)", full), ("feed, If-None-Match (304)", cached),
                           ("feed via nginx's micro-cache (200)", fronted),
                           ("feed via nginx's micro-cache (304)", fronted_304),
                           ("nginx, same JSON as a static file", plain)):
        print(f"{label:<38} {figures.get('rps', 0):>10,.0f} requests/s")
    for label, figures in (("app full", full), ("app revalidated", cached), ("deployed (nginx + app) full", fronted),
                           ("deployed (nginx + app) revalidated", fronted_304)):
        share = figures.get("rps", 0) / max(plain.get("rps", 1), 1)
        print(f"{label} / nginx: {share:.0%}   target >= 30%  {'PASS' if share >= 0.3 else 'MISS'}")


if __name__ == "__main__":
    main()
