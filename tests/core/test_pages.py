"""Core pages: Chinese by default, English on request, portal login with CSRF and a rate limit."""

from __future__ import annotations

import pytest

from metropoints.core.db import commit_unit_of_work
from metropoints.core.models import Role
from metropoints.core.operations import create_user


def page(client, path: str = "/", **headers: str) -> str:
    """A page's text. The test's app context outlives requests, so Babel's per-context locale is dropped first."""
    from flask_babel import refresh

    refresh()
    return client.get(path, headers=headers).get_data(as_text=True)


def test_front_page_is_chinese_by_default_and_english_on_request(client):
    """No preference: Chinese. The language switch (kept in the session) or the browser's wish: English."""
    assert "乘地铁，赚碳积分" in page(client)
    assert "Ride the metro, earn carbon points" in page(client, **{"Accept-Language": "en-GB,en;q=0.9"})
    client.get("/lang/en")
    assert "Ride the metro" in page(client)
    client.get("/lang/zh")
    assert "乘地铁" in page(client, **{"Accept-Language": "en"})


def test_operator_logs_in_and_out(client):
    """A portal account logs in with e-mail and password; a wrong password is a form error (422)."""
    create_user(email="ops@metro.example", password="correct-horse", role=Role.operator)
    commit_unit_of_work()
    wrong = client.post("/login", data={"email": "ops@metro.example", "password": "nope"})
    assert wrong.status_code == 422 and "邮箱或密码错误" in wrong.get_data(as_text=True)
    ok = client.post("/login?next=/healthz", data={"email": "OPS@metro.example", "password": "correct-horse"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/healthz"
    assert client.get("/healthz").get_json() == {"status": "ok", "user": True}
    assert client.post("/logout").status_code == 302
    assert client.get("/healthz").get_json()["user"] is False


def test_login_refuses_offsite_redirects(client):
    """`next` may only point inside the site; otherwise the account goes to its role's home."""
    create_user(email="ops@metro.example", password="correct-horse", role=Role.operator)
    commit_unit_of_work()
    reply = client.post("/login?next=//evil.example/", data={"email": "ops@metro.example", "password": "correct-horse"})
    assert reply.headers["Location"] == "/portal/campaigns/review"


def test_login_is_rate_limited(client):
    """Hammering the login form gets 429 after the configured number of tries."""
    codes = [client.post("/login", data={"email": "x@y.example", "password": "wrong-pass"}).status_code
             for _ in range(11)]
    assert codes[:10] == [422] * 10 and codes[10] == 429


def test_forms_need_a_csrf_token(app):
    """With CSRF on (as in production), a form post without the token is refused."""
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        reply = app.test_client().post("/login", data={"email": "ops@metro.example", "password": "whatever1"})
        assert reply.status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


@pytest.mark.parametrize("address", ["op@acc.test", "op@localhost", "op@x.invalid", "no-at-sign", "a@@b.cn",
                                     "o p@metro.example"])
def test_an_address_the_login_form_refuses_makes_no_account(runner, client, address):
    """One rule for e-mail addresses: `flask operators create` refuses what the login form refuses (a special-use
    domain like .test included), so no account exists that can never log in."""
    result = runner.invoke(args=["operators", "create", address, "--password", "correct-horse"])
    assert result.exit_code == 1 and "invalid" in result.output
    refused = client.post("/login", data={"email": address, "password": "correct-horse"})
    assert refused.status_code == 422


def test_an_address_the_cli_accepts_can_log_in(runner, client):
    """An operator made from the command line logs in with the address as typed, in any case."""
    assert runner.invoke(args=["operators", "create", "Op@Acc.Example", "--password", "correct-horse"]).exit_code == 0
    ok = client.post("/login", data={"email": "op@acc.example", "password": "correct-horse"})
    assert ok.status_code == 302
