"""`make run`'s path (devtools/run.sh) end to end: SQLite, jobs inline, localstripe on loopback, the demo data — and
the provider's webhooks for the demo invoice reach the app, because the app listens before the demo is loaded."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.settlement.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_serves_the_demo_and_receives_the_first_webhooks(tmp_path):
    """The script migrates, loads the network, starts the provider and the app, then loads the demo: the demo's
    statement is invoiced at localstripe and the provider's first events about it are recorded by the app."""
    database = tmp_path / "run.sqlite"
    app_port, provider_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "APP_PORT": str(app_port),
           "PROVIDER_PORT": str(provider_port), "PROVIDER_STORE": str(tmp_path / "localstripe.pickle"),
           "FLASK": f"{sys.executable} -m flask --app wsgi", "PYTHON": sys.executable}
    env.pop("PAYMENT_API_KEY", None)
    env.pop("REDIS_URL", None)
    log = tmp_path / "run.log"
    with log.open("wb") as output:
        process = subprocess.Popen(["bash", "devtools/run.sh"], cwd=ROOT, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    events: list[tuple] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            if database.exists():
                try:
                    with sqlite3.connect(database) as conn:
                        events = conn.execute("SELECT type FROM provider_events").fetchall()
                except sqlite3.OperationalError:  # not migrated yet
                    events = []
            if events:
                break
            time.sleep(0.5)
        assert process.poll() is None, log.read_text(errors="replace")
        assert events, "no provider event reached the app"
        assert requests.get(f"http://127.0.0.1:{app_port}/healthz", timeout=5).json()["status"] == "ok"
        with sqlite3.connect(database) as conn:
            (invoiced,) = conn.execute("SELECT count(*) FROM statements WHERE provider_invoice_id IS NOT NULL "
                                       "AND provider_invoice_id <> ''").fetchone()
        assert invoiced >= 1
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
