"""Flash-sale benchmark: 10,000 redemption attempts from 200 concurrent clients on one campaign of stock 1,000.

    python bench/flash_sale.py [--attempts 10000] [--clients 200] [--stock 1000] [--history 60000]
                               [--server granian|gunicorn] [--workers 2] [--threads 2] [--pool 2] [--warmup 2000]
                               [--redis URL|none] [--profile]

The app runs under granian (production's server; `--server gunicorn` to compare) on loopback against a fresh
PostgreSQL database (and Redis, for the sold-out mark, with a key prefix of its own), seeded with --history coupons of
ended campaigns before its ANALYZE, as a platform that has run a while has them (see seed()); wrk (with
bench/flash_sale.lua) sends each attempt as a different rider over HTTP. Prints attempts/s, p50/p99 latency, the
oversold count (must be 0), the CPU per attempt of the server's processes and of the app's PostgreSQL backends
(/proc/<pid>/stat before and after the sale), and, in the same run, two ceilings measured with pgbench at the app's
database concurrency (workers x pool connections): the bare statement that takes one unit of stock, and a whole
redemption written as one statement; with the ratio of attempts/s to each. `--profile` samples the workers with py-spy
during the sale and prints where their time went (bench/spy.py).
Targets (issue 13): attempts/s >= 0.8 x the ceiling, p99 <= 200 ms, 0 oversold, CPU per attempt <= 0.6 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import secrets
import tempfile
from pathlib import Path

import psycopg
import spy  # bench/ is on the path when run as a script
from common import ROOT, SERVERS, CpuMeter, fresh_database, pgbench_rate, serve, server_pids, wrk

from metropoints.redemption.rollups import BOUGHT_CTE

PRICE, BALANCE = 100, 1_000


def seed(url: str, *, riders: int, stock: int, history: int = 0) -> tuple[int, list[str]]:
    """An approved merchant with a store and a live campaign; riders with points and a token each; and `history`
    coupons of ended campaigns, used or expired over the last 200 days, as a platform that has run a while has them.

    The history matters to what PostgreSQL plans: ANALYZE of an empty coupons table says it is empty, and the
    generic plans a pooled connection then keeps (psycopg prepares a statement at its fifth run) scan the table in
    full for the rider's coupons of the campaign, a scan that grows with every sale until the next ANALYZE
    (autovacuum makes one once a tenth of the table changed; it is off on the benchmark machine)."""
    tokens = [f"ri_{secrets.token_urlsafe(24)}" for _ in range(riders)]
    with psycopg.connect(url) as conn:
        owner = conn.execute(
            "INSERT INTO users (email, password_hash, role, display_name, active, created_at) "
            "VALUES ('owner@flash.bench', 'x', 'merchant_owner', 'owner', true, now()) RETURNING id").fetchone()[0]
        merchant = conn.execute(
            "INSERT INTO merchants (name, category, contact_name, contact_phone, licence_no, status, decision_reason,"
            " owner_id, applied_at, decided_at) VALUES ('闪购商户', 'dining', 'x', '13900000000', "
            "'91210100MA0BENCH01', 'approved', '', %s, now(), now()) RETURNING id", (owner,)).fetchone()[0]
        store = conn.execute(
            "INSERT INTO stores (merchant_id, name, address, station_id, opening_hours, active, created_at) "
            "VALUES (%s, '中街店', '中街', '0119', '', true, now()) RETURNING id", (merchant,)).fetchone()[0]
        campaign = conn.execute(
            "INSERT INTO campaigns (merchant_id, status, title, description, category, benefit_type, face_value_fen,"
            " point_price, stock_total, stock_left, per_rider_limit, valid_from, valid_until, coupon_valid_days,"
            " terms, image_name, decision_reason, created_at) VALUES (%s, 'approved', '闪购', '', 'dining', "
            "'voucher', 2000, %s, %s, %s, 1, now() - interval '1 hour', now() + interval '7 days', 7, '', '', '',"
            " now()) RETURNING id", (merchant, PRICE, stock, stock)).fetchone()[0]
        conn.execute("INSERT INTO campaign_stores (campaign_id, store_id) VALUES (%s, %s)", (campaign, store))
        conn.execute(
            "INSERT INTO riders (phone, password_hash, display_name, points_balance, created_at) "
            "SELECT '17' || lpad(g::text, 9, '0'), 'x', 'r' || g, %s, now() FROM generate_series(1, %s) g",
            (BALANCE, riders))
        if history:
            past = conn.execute(
                "INSERT INTO campaigns (merchant_id, status, title, description, category, benefit_type, "
                "face_value_fen, point_price, stock_total, stock_left, per_rider_limit, valid_from, valid_until, "
                "coupon_valid_days, terms, image_name, decision_reason, created_at) SELECT %s, 'ended', '往期 ' || g, "
                "'', 'dining', 'voucher', 2000, %s, %s, 0, 1, now() - interval '210 days', now() - interval '1 day', "
                "7, '', '', '', now() - interval '210 days' FROM generate_series(1, 20) g RETURNING id",
                (merchant, PRICE, history // 20 + 1)).fetchall()
            conn.execute(
                "INSERT INTO coupons (campaign_id, rider_id, code, counter_code, status, points_spent, issued_at, "
                "expires_at, used_at, used_store_id, expired_at, billed) "
                "SELECT c.id, 1 + g %% %s, 'h' || md5(g::text), lpad(g::text, 12, '0'), "
                "CASE WHEN t.expired THEN 'expired' ELSE 'used' END, %s, t.at, t.at + interval '7 days', "
                "CASE WHEN NOT t.expired THEN t.at + interval '1 day' END, CASE WHEN NOT t.expired THEN %s END, "
                "CASE WHEN t.expired THEN t.at + interval '7 days' END, NOT t.expired "
                "FROM generate_series(1, %s) g, "
                "LATERAL (SELECT now() - (g %% 200 + 8) * interval '1 day' AS at, g %% 4 = 0 AS expired) t, "
                "LATERAL (SELECT (%s::int[])[1 + g %% 20] AS id) c",
                (riders, PRICE, store, history, [row[0] for row in past]))
        conn.execute(
            "INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after) "
            "SELECT id, now(), current_date, %s, 'adjustment', '', 'flash-sale bench', 'bench', %s FROM riders",
            (BALANCE, BALANCE))
        rider_ids = [row[0] for row in conn.execute("SELECT id FROM riders ORDER BY id")]
        with conn.cursor().copy("COPY api_tokens (token_hash, kind, subject_id, label, created_at) FROM STDIN") as copy:
            for rider_id, token in zip(rider_ids, tokens, strict=True):
                copy.write_row((hashlib.sha256(token.encode()).hexdigest(), "rider", rider_id, "bench",
                                "2026-01-01T00:00:00+00"))
        conn.execute("ANALYZE")
    return campaign, tokens


def warmup_campaign(url: str, campaign: int, *, stock: int) -> int:
    """A copy of the sale's campaign with a stock of its own, for the warm-up."""
    with psycopg.connect(url) as conn:
        copy = conn.execute(
            "INSERT INTO campaigns (merchant_id, status, title, description, category, benefit_type, face_value_fen,"
            " point_price, stock_total, stock_left, per_rider_limit, valid_from, valid_until, coupon_valid_days,"
            " terms, image_name, decision_reason, created_at) SELECT merchant_id, status, 'warm-up', description,"
            " category, benefit_type, face_value_fen, point_price, %s, %s, per_rider_limit, valid_from, valid_until,"
            " coupon_valid_days, terms, image_name, decision_reason, now() FROM campaigns WHERE id = %s RETURNING id",
            (stock, stock, campaign)).fetchone()[0]
        conn.execute("INSERT INTO campaign_stores (campaign_id, store_id) SELECT %s, store_id FROM campaign_stores "
                     "WHERE campaign_id = %s", (copy, campaign))
    return copy



def ceiling_campaign(url: str, campaign: int) -> int:
    """A campaign of its own for the pgbench ceilings, on sale like `campaign`: stock that never runs out, a price of 1
    and no real limit."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "INSERT INTO campaigns (merchant_id, status, title, description, category, benefit_type, point_price,"
            " stock_total, stock_left, per_rider_limit, valid_from, valid_until, coupon_valid_days, terms,"
            " image_name, decision_reason, created_at) SELECT merchant_id, 'approved', 'ceiling', '', 'dining', "
            "'free_item', 1, 1000000000, 1000000000, 1000000, valid_from, valid_until, 1, '', '', '', now() "
            "FROM campaigns WHERE id = %s RETURNING id", (campaign,)).fetchone()[0]


def bare_update_script(campaign: int) -> str:
    """pgbench: the bare statement that takes one unit of stock, a transaction each."""
    return f"UPDATE campaigns SET stock_left = stock_left - 1 WHERE id = {campaign} AND stock_left > 0;\n"


def one_statement_script(campaign: int, riders: int) -> str:
    """pgbench: a whole redemption as one statement, a transaction each: a random rider's row locked, their coupons
    of the campaign counted, one unit of stock taken, the points debited, the coupon issued, the ledger entry posted
    and the campaign's day row counted (the rollup's own upsert, redemption.rollups.BOUGHT_CTE)."""
    tally = BOUGHT_CTE.replace(":day", "(now() AT TIME ZONE 'Asia/Shanghai')::date")
    script = f"""\\set r random(1, {riders})
WITH rider AS (
    SELECT points_balance FROM riders WHERE id = :r FOR UPDATE),
held AS (
    SELECT count(*) AS n FROM coupons WHERE campaign_id = :c AND rider_id = :r AND status <> 'cancelled'),
stock AS (
    UPDATE campaigns SET stock_left = stock_left - 1
    WHERE id = :c AND stock_left > 0 AND status = 'approved' AND valid_from <= now() AND valid_until > now()
        AND (SELECT n FROM held) < per_rider_limit AND (SELECT points_balance FROM rider) >= :price
    RETURNING id),
debit AS (
    UPDATE riders SET points_balance = points_balance - :price
    WHERE id = :r AND points_balance >= :price AND EXISTS (SELECT 1 FROM stock)
    RETURNING points_balance),
coupon AS (
    INSERT INTO coupons (campaign_id, rider_id, code, counter_code, status, points_spent, issued_at, expires_at)
    SELECT :c, :r, md5(random()::text), lpad(floor(random() * 1e12)::bigint::text, 12, '0'), 'issued', :price,
           now(), now() + interval '1 day' FROM debit
    ON CONFLICT (counter_code) WHERE status = 'issued' DO NOTHING
    RETURNING id),
entry AS (
    INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after)
    SELECT :r, now(), (now() AT TIME ZONE 'Asia/Shanghai')::date, -:price, 'redemption',
           'coupon:' || coupon.id::text, '', '', debit.points_balance
    FROM coupon, debit
    RETURNING id),
{tally}
SELECT (SELECT id FROM coupon);
"""
    # The campaign and the rider are pgbench's variables, cast (a prepared statement would leave their types unknown),
    # so PostgreSQL plans them as it plans the app's parameters: with the campaign as a literal, a campaign newer than
    # the last ANALYZE was estimated at one coupon and counted the rider's coupons through ix_coupons_campaign_issued,
    # every coupon of the campaign read for each sale. The price is a literal number.
    script = re.sub(r":c\b", ":c::int", f"\\set c {campaign}\n" + script)
    return script.replace(":price", "1").replace(":r", ":r::int")


def sale(base: str, token_file: Path, campaign: int, attempts: int, clients: int) -> tuple[str, dict]:
    """One wrk run of `attempts` redemption attempts on `campaign` by `clients` connections, each a different rider;
    wrk's output and figures (bench/flash_sale.lua stops once every attempt was answered)."""
    done_file = Path(f"{token_file}.{campaign}.done")
    try:
        return wrk(base, script=ROOT / "bench" / "flash_sale.lua", connections=clients, threads=2, duration=300,
                   done_file=done_file,
                   args=(str(token_file), str(campaign), str(attempts), "2", str(done_file), str(clients)))
    finally:
        done_file.unlink(missing_ok=True)


def main() -> None:
    """Seed, serve, load, check, measure the ceilings, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--stock", type=int, default=1_000)
    # Measured on 2 cores shared with PostgreSQL and wrk: 2 workers x 2 threads beat 2x4, 2x8, 3x2, 3x3 and 4x4.
    # More threads only queue on the GIL, and more processes than cores take the core from the stock lock's holder.
    parser.add_argument("--history", type=int, default=60_000,
                        help="coupons of ended campaigns seeded first, as a running platform has them (0: none)")
    parser.add_argument("--server", choices=SERVERS, default="granian",
                        help="the WSGI server (production's is granian; gunicorn to compare the two in one window)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pool", type=int, default=2, help="database connections per server worker")
    parser.add_argument("--warmup", type=int, default=2_000,
                        help="attempts on a campaign of its own before the measured sale (0: none), so the workers' "
                             "threads, connections and code paths are warm, as a server is when a sale starts")
    parser.add_argument("--ceiling-seconds", type=int, default=10, help="how long each pgbench ceiling runs")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="REDIS_URL of the app (the sold-out mark); 'none' runs without Redis")
    parser.add_argument("--profile", action="store_true",
                        help="sample the server's workers with py-spy during the measured sale and print where their "
                             "time went (sampling slows them: take the figures from a run without it)")
    parser.add_argument("--profile-raw", default="/tmp/flash_profile.txt",
                        help="where --profile keeps the merged raw stacks (python bench/spy.py FILE summarises them)")
    args = parser.parse_args()
    connections = args.workers * args.pool
    extra_env = {"FLASK_QUEUE_PREFIX": json.dumps(f"bench-flash-{os.getpid()}")}
    if args.redis != "none":
        extra_env["REDIS_URL"] = args.redis
    with fresh_database("mp_bench_flash") as url:
        # A rider for each attempt, and one more for each client: wrk sends a request on every connection until the
        # last reply is in, so up to one request a connection goes past the attempts counted (flash_sale.lua gives
        # those riders of their own: a rider's second attempt would be a limit_reached reply, not a sale).
        campaign, tokens = seed(url, riders=args.attempts + args.clients, stock=args.stock, history=args.history)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as token_file:
            token_file.write("\n".join(tokens) + "\n")
        tokens_path = Path(token_file.name)
        print(f"seeded: campaign {campaign} (stock {args.stock}, price {PRICE}), {args.attempts:,} riders; "
              f"{args.server} {args.workers} workers x {args.threads} threads, {args.pool} DB connections each; "
              f"Redis: {args.redis}", flush=True)
        # wrk opens all its connections at once and keeps them; without a cap one gunicorn worker can accept most of
        # them and leave the other core idle, so each takes its share (and room for its threads) and no more.
        # Granian's workers were seen to share them evenly without one.
        if args.server == "gunicorn":
            share = -(-args.clients // args.workers) + args.threads
            extra_env["GUNICORN_CMD_ARGS"] = f"--worker-connections {share}"
        profile_lines: list[str] = []
        with serve(url, server=args.server, workers=args.workers, threads=args.threads, pool=args.pool,
                   extra_env=extra_env) as (base, server):
            if args.warmup:
                warm_campaign = warmup_campaign(url, campaign, stock=args.warmup // 10)
                _, warm = sale(base, tokens_path, warm_campaign, args.warmup, args.clients)
                print(f"warm-up: {int(warm.get('COUNT_replies', 0)):,} attempts on campaign {warm_campaign} "
                      f"({int(warm.get('COUNT_created', 0)):,} sold), not measured", flush=True)
            workers = server_pids(server, args.workers)
            meter = CpuMeter(url, workers)
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            meter.start()
            if args.profile:
                with spy.sample(workers, keep=Path(args.profile_raw)) as profile:
                    out, figures = sale(base, tokens_path, campaign, args.attempts, args.clients)
            else:
                out, figures = sale(base, tokens_path, campaign, args.attempts, args.clients)
            meter.stop()
            if args.profile:
                profile_lines = profile["lines"]
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
        wrk_cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
        tokens_path.unlink()
        with psycopg.connect(url) as conn:
            coupons, stock_left = conn.execute(
                "SELECT (SELECT count(*) FROM coupons WHERE campaign_id = %s), "
                "(SELECT stock_left FROM campaigns WHERE id = %s)", (campaign, campaign)).fetchone()
            books = conn.execute(
                "SELECT count(*) FROM riders r WHERE r.points_balance <> "
                "(SELECT sum(points) FROM ledger_entries e WHERE e.rider_id = r.id)").fetchone()[0]
        ceiling_id = ceiling_campaign(url, campaign)
        bare = pgbench_rate(url, bare_update_script(ceiling_id), clients=connections, seconds=args.ceiling_seconds)
        whole = pgbench_rate(url, one_statement_script(ceiling_id, args.attempts), clients=connections,
                             seconds=args.ceiling_seconds)
    seconds = figures.get("seconds", 0) or 1
    created = int(figures.get("COUNT_created", 0))
    replies = int(figures.get("COUNT_replies", 0))
    rate = figures.get("rps", 0)
    oversold = max(0, coupons - args.stock) + (1 if stock_left < 0 else 0)
    print(out.strip())
    if profile_lines:
        print(f"\n==== profile of the {args.server} workers during the sale (py-spy) ====")
        print("\n".join(profile_lines))
    print("\n==== summary ====")
    conflicts, other = int(figures.get("COUNT_conflicts", 0)), int(figures.get("COUNT_other", 0))
    print(f"attempts answered: {replies:,} in {seconds:.2f} s; 201 created {created:,}, 409 {conflicts:,}, "
          f"other {other:,}{'  (profiled: slower than an unprofiled run)' if args.profile else ''}")
    print(f"attempts/s: {rate:,.0f}")
    print(f"latency p50 {figures.get('LAT_p50_ms', 0):.1f} ms, p99 {figures.get('LAT_p99_ms', 0):.1f} ms   "
          f"target p99 <= 200 ms  {'PASS' if figures.get('LAT_p99_ms', 1e9) <= 200 else 'MISS'}")
    print(f"redemptions: {coupons:,} coupons, stock left {stock_left}; oversold: {oversold}   target 0  "
          f"{'PASS' if oversold == 0 else 'MISS'}")
    print(f"riders whose balance differs from their ledger: {books}")
    print(f"{meter.per(replies, 'attempt')}   target <= 0.6 ms  "
          f"{'PASS' if (meter.app + meter.database) / max(replies, 1) <= 0.0006 else 'MISS'}")
    cores = os.cpu_count() or 1
    print(f"CPU during the sale: {args.server} processes {meter.app:.1f} s, "
          f"PostgreSQL backends {meter.database:.1f} s, "
          f"wrk {wrk_cpu:.1f} s (of {cores * seconds:.1f} core-seconds on {cores} cores)")
    for name, ceiling in (("bare stock-taking UPDATE", bare), ("whole redemption as one statement", whole)):
        ratio = rate / ceiling if ceiling else 0
        print(f"ceiling, {name} (pgbench, {connections} connections): {ceiling:,.0f}/s; ratio to ceiling: "
              f"{ratio:.2f}")
    print("target (issue 13): attempts/s >= 0.8 x the bare UPDATE's ceiling  "
          f"{'PASS' if rate >= 0.8 * bare else 'MISS'}")


if __name__ == "__main__":
    main()
