"""The app under the server production runs (granian's WSGI interface, as README and bench/ start it), in a process
of its own on loopback, against this run's database: a flash sale's requests over real HTTP take the hot endpoints'
fast path there (core.fastpath reads granian's environ and body), the refusals carry their reason codes, what the
fast path does not take (a chunked body, a page) is Flask's, and no malformed request or huge id is a 500."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metropoints.core.db import db
from metropoints.redemption.models import Coupon
from tests.conftest import RUN_ID

ROOT = Path(__file__).resolve().parents[2]
GRANIAN = Path(sys.executable).parent / "granian"
REDEEM = "/api/v1/redemptions"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served(app, tmp_path) -> Iterator[tuple[int, Path]]:
    """granian serving the app on this run's database: (its port, the log of requests Flask dispatched)."""
    port, log = free_port(), tmp_path / "flask_requests.log"
    log.touch()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env |= {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": "served-test-" + "k" * 32,
            "SERVED_FLASK_LOG": str(log), "FLASK_QUEUE_PREFIX": json.dumps(f"mp-served-{RUN_ID}"),
            "FLASK_SQLALCHEMY_ENGINE_OPTIONS": json.dumps({"pool_size": 2, "max_overflow": 0})}
    process = subprocess.Popen(
        [str(GRANIAN), "--interface", "wsgi", "--workers", "1", "--blocking-threads", "2", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-ws", "tests.redemption.served_app:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("granian did not start: " + process.stderr.read().decode()[-2000:]) from None
                time.sleep(0.1)
        yield port, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()
        db.session.rollback()  # this test's session sees what the served app wrote


def post(port: int, path: str, body: bytes, headers: dict[str, str], *, chunked: bool = False):
    """(status, JSON reply, headers) of one POST over a fresh HTTP/1.1 connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if chunked:
            connection.putrequest("POST", path)
            for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
                connection.putheader(name, value)
            connection.endheaders()
            connection.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        else:
            connection.request("POST", path, body=body, headers={**headers, "Content-Length": str(len(body))})
        reply = connection.getresponse()
        data = reply.read()
        return reply.status, json.loads(data) if data else None, reply.headers  # names case-insensitive
    finally:
        connection.close()


def rider_headers(token: str) -> dict[str, str]:
    """A rider app's headers."""
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def dispatched(log: Path) -> list[str]:
    """The requests Flask dispatched itself so far."""
    return log.read_text(encoding="utf-8").splitlines()


def test_a_sale_and_its_refusals_take_the_fast_path_under_granian(served, create_shop, create_campaign,
                                                                  create_riders, token_for, books):
    """Three riders on a stock of two, one of them twice: two coupons, a sold-out answer and a limit answer with
    their reason codes, every one of them through the fast path; the books balance."""
    port, log = served
    shop = create_shop()
    campaign = create_campaign(shop, stock_total=2, per_rider_limit=1)
    first, second, third = (token_for(rider) for rider in create_riders(3))
    body = json.dumps({"campaign_id": campaign.id}).encode()
    status, reply, headers = post(port, REDEEM, body, rider_headers(first))
    assert status == 201, reply
    assert reply["points_spent"] == 100 and len(reply["counter_code"]) > 0
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    assert headers.get("Set-Cookie") is None
    assert post(port, REDEEM, body, rider_headers(first))[1]["error"]["code"] == "limit_reached"
    assert post(port, REDEEM, body, rider_headers(second))[0] == 201
    status, reply, _ = post(port, REDEEM, body, rider_headers(third))
    assert (status, reply["error"]["code"]) == (409, "out_of_stock")
    assert dispatched(log) == []  # none of them went through Flask
    db.session.rollback()
    assert db.session.query(Coupon).filter_by(campaign_id=campaign.id).count() == 2
    books()


def test_what_the_fast_path_does_not_take_is_flasks_under_granian(served, create_shop, create_campaign,
                                                                  create_riders, token_for, books):
    """A chunked body (no Content-Length) is answered by Flask, with the same sale; malformed JSON, a huge id and a
    missing token are 4xx with their reason codes on the fast path, never a 500; a page is Flask's."""
    port, log = served
    shop = create_shop()
    campaign = create_campaign(shop, stock_total=5)
    first, second = (token_for(rider) for rider in create_riders(2))
    body = json.dumps({"campaign_id": campaign.id}).encode()
    status, reply, _ = post(port, REDEEM, body, rider_headers(first), chunked=True)
    assert status == 201, reply
    assert dispatched(log) == [f"POST {REDEEM}"]
    refusals = [
        (b'{"campaign_id": ', rider_headers(second), 400, "malformed_json"),
        (json.dumps({"campaign_id": 10**30}).encode(), rider_headers(second), 422, "invalid"),
        (json.dumps({"campaign_id": "\udcff"}, ensure_ascii=True).encode(), rider_headers(second), 400,
         "malformed_json"),
        (b"\xff\xfe{", rider_headers(second), 400, "malformed_json"),
        (body, {"Content-Type": "application/json"}, 401, "unauthorized"),
    ]
    for raw, headers, expected, code in refusals:
        status, reply, _ = post(port, REDEEM, raw, headers)
        assert (status, reply["error"]["code"]) == (expected, code), (raw, reply)
    assert dispatched(log) == [f"POST {REDEEM}"]  # the refusals were the fast path's
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        page = connection.getresponse()
        assert page.status == 200 and page.getheader("Content-Type", "").startswith("text/html")
        page.read()
    finally:
        connection.close()
    assert dispatched(log)[-1] == "GET /"
    books()
