"""What the HTTP benchmarks share: a fresh database, the app under gunicorn on loopback, wrk runs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://127.0.0.1:5432/test")
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def fresh_database(prefix: str):
    """A new PostgreSQL database, migrated to head with the stations loaded; dropped afterwards. Yields its URL."""
    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-secret-" + "x" * 32}
    for command in (["db", "upgrade"], ["network", "load"]):
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", *command], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)
    try:
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def gunicorn(url: str, *, workers: int, threads: int, pool: int, extra_env: dict | None = None,
             worker_class: str = "gthread"):
    """The app under gunicorn on a free loopback port (gthread workers unless told, `pool` DB connections each)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-secret-" + "x" * 32,
           "FLASK_SQLALCHEMY_ENGINE_OPTIONS": json.dumps({"pool_size": pool, "max_overflow": 0,
                                                           "pool_pre_ping": False}),
           "FLASK_LOGIN_RATE_LIMIT": "100000 per second", **(extra_env or {})}
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", str(workers), "-k", worker_class, "--threads", str(threads), "--backlog", "2048",
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("gunicorn did not start: " + process.stderr.read().decode()[-2000:])
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def wrk(base: str, *, script: Path | None, connections: int, threads: int = 2, duration: int = 60,
        headers: tuple[str, ...] = (), path: str = "/", args: tuple[str, ...] = (),
        done_file: Path | None = None) -> tuple[str, dict]:
    """Run wrk; its output and parsed figures (requests/s, and any `KEY value` lines the script prints).

    wrk's main thread always waits out `duration`. A script that stops its threads early appends a line to
    `done_file` per finished thread: once all have, wrk is interrupted (it then reports at once), and the
    figures get `seconds` (wall time until the last thread finished) and `rps` from it.
    """
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency",
               "--timeout", "10s"]
    if script:
        command += ["-s", str(script)]
    for header in headers:
        command += ["-H", header]
    command.append(base + path)
    if args:
        command += ["--", *args]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finished_at = None
    if done_file is not None:
        while process.poll() is None and time.perf_counter() - started < duration:
            if done_file.exists() and len(done_file.read_text().splitlines()) >= threads:
                finished_at = time.perf_counter()
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.01)
    out, _ = process.communicate(timeout=duration + 60)
    figures: dict = {}
    if match := re.search(r"Requests/sec:\s+([\d.]+)", out):
        figures["rps"] = float(match.group(1))
    for key, value in re.findall(r"^\s*(p\d+|LAT_\w+|COUNT_\w+)[ =:]+([\d.]+)", out, re.M):
        figures[key] = float(value)
    if finished_at is not None:
        figures["seconds"] = finished_at - started
        figures["rps"] = figures.get("COUNT_replies", 0) / figures["seconds"]
    return out, figures
