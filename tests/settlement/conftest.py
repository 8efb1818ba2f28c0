"""Settlement fixtures: the real localstripe server on loopback, a fault proxy in front of it, the app served on
loopback for the provider's webhooks, and a month of redemptions and validations.

localstripe runs as its own process (`python devtools/localstripe_server.py`), as `make run` starts
it; its store is emptied before each test. The fault proxy forwards to it and can refuse connections, answer 500
without forwarding, or forward and then answer 500 (the provider did the work; the reply was lost).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import SERVICE_ZONE
from tests.conftest import Shop
from tests.redemption.conftest import create_campaign, create_riders  # noqa: F401  (fixtures)

WEBHOOK_SECRET = "whsec_test_settlement"
API_KEY = "sk_test_settlement"
# The launcher lives outside the installed package (a development tool): devtools/ at the repository root.
LAUNCHER = Path(__file__).resolve().parents[2] / "devtools" / "localstripe_server.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStripe:
    """A localstripe process on a loopback port; it can be stopped and started again (with an empty store)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("localstripe did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def get(self, path: str, **params) -> dict:
        response = requests.get(f"{self.url}{path}", params=params, auth=(API_KEY, ""), timeout=5)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, **data) -> dict:
        response = requests.post(f"{self.url}{path}", data=data, auth=(API_KEY, ""), timeout=5)
        response.raise_for_status()
        return response.json()

    def invoices(self) -> list[dict]:
        return self.get("/v1/invoices", limit=100)["data"]

    def pay(self, payment_url: str, card: str = "4242424242424242") -> str:
        """Pay on the invoice's hosted page, as the merchant does after following the link; the page's text."""
        response = requests.post(f"{payment_url}/pay", data={"card": card}, timeout=5)
        response.raise_for_status()
        return response.text


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[LocalStripe]:
    server = LocalStripe()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def localstripe(localstripe_server: LocalStripe) -> LocalStripe:
    """The shared localstripe, its store emptied."""
    requests.delete(f"{localstripe_server.url}/_config/data", timeout=5).raise_for_status()
    return localstripe_server


class FaultProxy:
    """An HTTP proxy on loopback in front of the provider. `faults` is a list of (method, path prefix, fault)
    taken in order as requests match: "refuse" closes the connection unanswered, "500" answers 500 without
    forwarding, "forward_then_500" forwards and answers 500, "forward_then_stall" forwards and answers only after
    `stall` seconds (past the client's timeout)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.faults: list[tuple[str, str, str]] = []
        self.stall = 3.0
        self.seen: list[tuple[str, str, int]] = []
        self.keys: list[tuple[str, str, str | None]] = []  # (method, path, Idempotency-Key) of every request
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def handle_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0]
                proxy.keys.append((self.command, path, self.headers.get("Idempotency-Key")))
                fault = proxy.take_fault(self.command, path)
                if fault == "refuse":
                    proxy.seen.append((self.command, path, 0))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, payload, content_type = 500, b'{"error": {"message": "injected"}}', "application/json"
                if fault != "500":
                    upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=10)
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    reply = upstream.getresponse()
                    payload, content_type = reply.read(), reply.getheader("Content-Type", "application/json")
                    status = 500 if fault == "forward_then_500" else reply.status
                    upstream.close()
                    if fault == "forward_then_stall":
                        time.sleep(proxy.stall)
                proxy.seen.append((self.command, path, status))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting

            do_GET = do_POST = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take_fault(self, method: str, path: str) -> str | None:
        with self.lock:
            for index, (fault_method, prefix, fault) in enumerate(self.faults):
                if fault_method == method and path.startswith(prefix):
                    del self.faults[index]
                    return fault
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(localstripe: LocalStripe, app) -> Iterator[FaultProxy]:
    """A fault proxy in front of localstripe, and the app pointed at it."""
    proxy = FaultProxy(localstripe.port)
    app.config["PAYMENT_API_BASE"] = proxy.url
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def provider_app(app, localstripe: LocalStripe):
    """The app talking to localstripe, with the test webhook secret and no waiting between retries."""
    saved = {key: app.config[key] for key in ("PAYMENT_API_BASE", "PAYMENT_API_KEY", "PAYMENT_WEBHOOK_SECRET",
                                              "SETTLEMENT_RETRY_BACKOFF", "PAYMENT_TIMEOUT_SECONDS")}
    app.config.update(PAYMENT_API_BASE=localstripe.url, PAYMENT_API_KEY=API_KEY, PAYMENT_WEBHOOK_SECRET=WEBHOOK_SECRET,
                      SETTLEMENT_RETRY_BACKOFF=(0, 0, 0, 0, 0), PAYMENT_TIMEOUT_SECONDS=5)
    try:
        yield app
    finally:
        app.config.update(saved)


@pytest.fixture
def webhook_server(provider_app, localstripe: LocalStripe) -> Iterator[str]:
    """The app served on loopback and registered as localstripe's webhook; the endpoint's URL."""
    server = make_server("127.0.0.1", 0, provider_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.port}/api/v1/webhooks/payments"
    requests.post(f"{localstripe.url}/_config/webhooks/metropoints", timeout=5,
                  data={"url": url, "secret": WEBHOOK_SECRET}).raise_for_status()
    try:
        yield url
    finally:
        # Point the registration nowhere useful again, so later tests' events do not reach a stopped server.
        requests.post(f"{localstripe.url}/_config/webhooks/metropoints", timeout=5,
                      data={"url": "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET})
        server.shutdown()
        thread.join(timeout=10)


# A month of activity.

OCTOBER = datetime(2026, 10, 1, tzinfo=SERVICE_ZONE)
PERIOD = date(2026, 10, 1)  # October as a settlement period
AFTER_OCTOBER = datetime(2026, 11, 2, 12, 0, tzinfo=SERVICE_ZONE)


def statements() -> list:
    """Every statement, fresh from the database, by merchant then period."""
    from metropoints.settlement.models import Statement

    db.session.expire_all()
    return list(db.session.scalars(select(Statement).order_by(Statement.merchant_id, Statement.period)))


@pytest.fixture
def month_of_coupons(create_campaign, create_riders) -> Callable:  # noqa: F811
    """Creator: for a shop, `used` coupons redeemed and used during October 2026 (Asia/Shanghai), plus one
    cancelled, one expired and one still issued that must never be billed. Returns the used coupons' ids."""
    from metropoints.redemption import operations as redemption

    def create(shop: Shop, used: int = 3, *, campaigns: int = 1, when: datetime = OCTOBER) -> list[int]:
        made = [create_campaign(shop, valid_from=when - timedelta(days=30), valid_until=when + timedelta(days=60),
                                per_rider_limit=50, coupon_valid_days=10) for _ in range(campaigns)]
        rider = create_riders(1, points=100_000)[0]
        used_ids = []
        for n in range(used + 3):
            moment = when + timedelta(days=1 + n % 20, hours=n % 10)
            bought = redemption.redeem(rider_id=rider.id, campaign_id=made[n % campaigns].id, now=moment)
            commit_unit_of_work()
            if n < used:
                redemption.validate(cashier=shop.cashier, code=bought.code, now=moment + timedelta(hours=1))
                used_ids.append(bought.coupon_id)
            elif n == used:
                redemption.cancel(rider_id=rider.id, coupon_id=bought.coupon_id, now=moment + timedelta(hours=1))
            elif n == used + 1:
                redemption.expire_coupons(now=moment + timedelta(days=11))
            commit_unit_of_work()
        db.session.expire_all()
        return used_ids

    return create
