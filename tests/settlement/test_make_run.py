"""`make run`'s path (devtools/run.sh) end to end: SQLite, jobs inline, localstripe on loopback, the demo data — and
the provider's webhooks for the demo invoice reach the app, because the app listens before the demo is loaded."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import requests

from metropoints.demo import DEMO_OPERATOR, DEMO_PASSWORD
from tests.settlement.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def csrf_post(browser, url: str, data: dict) -> requests.Response:
    """Post a portal form the way a browser does: read the form's CSRF token first."""
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', browser.get(url, timeout=10).text).group(1)
    return browser.post(url, data={"csrf_token": token, **data}, timeout=10, allow_redirects=False)


def test_make_run_serves_the_demo_and_receives_the_first_webhooks(tmp_path):
    """The script migrates, loads the network, starts the provider, the mail catcher and the app, then loads the
    demo: the demo's statement is invoiced at localstripe and the provider's first events about it are recorded by
    the app; a password reset mail reaches the catcher and the operator reads it on the back office's mail page."""
    database = tmp_path / "run.sqlite"
    app_port, provider_port = free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "APP_PORT": str(app_port),
           "PROVIDER_PORT": str(provider_port), "PROVIDER_STORE": str(tmp_path / "localstripe.pickle"),
           "FLASK": f"{sys.executable} -m flask --app wsgi", "PYTHON": sys.executable,
           "MAIL_CATCHER_PORT": str(free_port()), "FLASK_MAIL_CATCHER_DIR": str(tmp_path / "mail")}
    env.pop("FLASK_MAIL_SERVER", None)
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
        base = f"http://127.0.0.1:{app_port}"
        browser = requests.Session()
        assert csrf_post(browser, f"{base}/password/forgot", {"email": DEMO_OPERATOR}).status_code == 302
        deadline = time.monotonic() + 20
        while not list((tmp_path / "mail").glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list((tmp_path / "mail").glob("*.eml")), "the reset mail did not reach the catcher"
        login = {"email": DEMO_OPERATOR, "password": DEMO_PASSWORD}
        assert csrf_post(browser, f"{base}/login", login).status_code == 302
        # An operator sets up the second factor at the first sign-in: the key from the page, a code from it.
        enrol = browser.get(f"{base}/account/two-factor", timeout=10).text
        secret = re.sub(r"<[^>]+>|\s", "", re.search(r'class="twofactor-secret">(.*?)</code>', enrol).group(1))
        assert csrf_post(browser, f"{base}/account/two-factor", {"code": pyotp.TOTP(secret).now()}).status_code == 200
        mail_page = browser.get(f"{base}/backoffice/mail", timeout=10, headers={"Accept-Language": "en"}).text
        # The operator's account reads Chinese: the mail is listed as sent and as caught, in Chinese.
        assert mail_page.count("设置地铁碳积分平台的新密码") >= 2
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
