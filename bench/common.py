"""What the HTTP benchmarks share: a fresh database, the app served on loopback (granian, or gunicorn to compare), wrk
runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://127.0.0.1:5432/test")
BIN = Path(sys.executable).parent
SECRET_KEY = "bench-secret-" + "x" * 32  # the served app's, so a benchmark can sign coupon codes for it


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
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET_KEY}
    for command in (["db", "upgrade"], ["network", "load"]):
        subprocess.run([str(BIN / "flask"), "--app", "wsgi", *command], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)
    try:
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SERVERS = ("granian", "gunicorn")


@contextmanager
def serve(url: str, *, server: str = "granian", workers: int, threads: int, pool: int,
          extra_env: dict | None = None, worker_class: str = "gthread"):
    """The app on a free loopback port, as production runs it: under granian (its WSGI interface, `workers`
    processes of `threads` threads each), or under gunicorn (`worker_class` workers, gthread unless told) to
    compare the two; `pool` DB connections per worker. Yields (base URL, the server's process): its pids for the CPU
    meter come from `server_pids`."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}  # Redis only when told
    env |= {"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY,
            "FLASK_SQLALCHEMY_ENGINE_OPTIONS": json.dumps({"pool_size": pool, "max_overflow": 0}),
            "FLASK_LOGIN_RATE_LIMIT": "100000 per second", **(extra_env or {})}
    if server == "granian":
        argv = [str(BIN / "granian"), "--interface", "wsgi", "--workers", str(workers), "--blocking-threads",
                str(threads), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-ws",
                "wsgi:app"]
    elif server == "gunicorn":
        argv = [str(BIN / "gunicorn"), "-w", str(workers), "-k", worker_class, "--threads", str(threads),
                "--backlog", "2048", "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"]
    else:
        raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{server} did not start: " + process.stderr.read().decode()[-2000:])
        if process.poll() is not None:
            raise RuntimeError(f"{server} exited: " + process.stderr.read().decode()[-2000:])
        yield base, process
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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (0 once it is gone), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(process: subprocess.Popen, workers: int) -> list[int]:
    """The pids of the server's processes: its master and every process under it (the workers). Waits a while for
    `workers` of them, since a master listens before its workers have booted. The master is metered too: with
    either server its share is small, and what it does is part of serving."""
    pids: list[int] = []
    for _ in range(100):
        pids = _descendants(process.pid)
        if len(pids) > workers:
            break
        time.sleep(0.1)
    return pids


def _descendants(root: int) -> list[int]:
    """`root` and the pids of every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except OSError:
                continue
    found, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return sorted(found)


def backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the bench database (the app's pooled connections),
    by pid; the asking connection left out. The server runs on this machine, so /proc has them."""
    with psycopg.connect(url) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
    return {pid: cpu_seconds(pid) for pid in pids}


class CpuMeter:
    """CPU used by the server's processes and by the database's backends between `start()` and `stop()`."""

    def __init__(self, url: str, workers: list[int]) -> None:
        """Watch `workers` (pids) and the backends of the database at `url`."""
        self.url, self.workers = url, workers
        self.app = self.database = 0.0

    def start(self) -> None:
        """Take the first reading."""
        self._app = {pid: cpu_seconds(pid) for pid in self.workers}
        self._db = backend_cpu(self.url)

    def stop(self) -> None:
        """Take the second reading (while the app still runs, so its connections are still there)."""
        self.app = sum(cpu_seconds(pid) - start for pid, start in self._app.items())
        self.database = sum(cpu - self._db.get(pid, 0.0) for pid, cpu in backend_cpu(self.url).items())

    def per(self, count: int, what: str) -> str:
        """`CPU per <what>: X ms (app A ms, PostgreSQL P ms)` over `count` requests."""
        count = max(count, 1)
        app, database = 1000 * self.app / count, 1000 * self.database / count
        return f"CPU per {what}: {app + database:.2f} ms (app {app:.2f} ms, PostgreSQL {database:.2f} ms)"


PGBENCH = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"


def pgbench_rate(url: str, script: str, *, clients: int, seconds: int) -> float:
    """Transactions/s of a pgbench custom script run by `clients` connections for `seconds` (prepared statements,
    as the app's driver uses after a statement's first few runs)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
        file.write(script)
    try:
        done = subprocess.run([PGBENCH, "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
                               "-T", str(seconds), "-f", file.name, url],
                              capture_output=True, text=True, timeout=seconds + 120)
    finally:
        Path(file.name).unlink()
    for line in done.stdout.splitlines():
        if line.startswith("tps"):
            return float(line.split("=")[1].split()[0])
    raise RuntimeError(done.stdout + done.stderr)
