"""Accounts look after themselves: a forgotten password is reset through a signed, time-limited, single-use link
sent by e-mail through a real SMTP server; a password and a profile are changed; the last sign-ins are listed."""

from __future__ import annotations

import re

import pytest
from flask import g
from flask_babel import refresh
from itsdangerous import URLSafeTimedSerializer

from metropoints.core import accounts
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import LoginEvent, MailStatus, OutgoingMail, Role
from metropoints.core.operations import create_user

PASSWORD = "correct-horse"


def fresh() -> None:
    """Forget the last request's locale and user on the test's long-lived app context."""
    refresh()
    g.pop("_login_user", None)


def post(client, path: str, data: dict, lang: str = "en"):
    """A form post in a language."""
    fresh()
    return client.post(path, data=data, headers={"Accept-Language": lang})


@pytest.fixture
def owner():
    """An active portal account reading its mail in English."""
    user = create_user(email="owner@shop.example", password=PASSWORD, role=Role.merchant_owner, display_name="Li")
    user.locale = "en"
    commit_unit_of_work()
    return user


def link_in(message) -> str:
    """The reset link's path in a mail."""
    return re.search(r"http://[^/\s]+(/password/reset/\S+)", message.get_content()).group(1)


def test_forgot_password_mail_link_new_password_login(app, client, smtp_server, owner):
    """The whole path: ask for a link, the mail arrives at the SMTP server in the account's language, the link sets
    a new password, the new password logs in and the old one does not; the link works once."""
    reply = post(client, "/password/forgot", {"email": "Owner@Shop.example"})
    assert reply.status_code == 302 and reply.headers["Location"] == "/login"
    (message,) = smtp_server.wait(1)
    assert message["To"] == "owner@shop.example" and "new password" in message["Subject"]
    path = link_in(message)
    assert db.session.query(OutgoingMail).one().status == MailStatus.sent
    assert client.get(path).status_code == 200
    assert post(client, path, {"password": "brand-new-pass", "confirm": "brand-new-pass"}).status_code == 302
    assert post(client, "/login", {"email": owner.email, "password": PASSWORD}).status_code == 422
    assert post(client, "/login", {"email": owner.email, "password": "brand-new-pass"}).status_code == 302
    again = post(app.test_client(), path, {"password": "third-password", "confirm": "third-password"})
    assert again.status_code == 302 and again.headers["Location"] == "/password/forgot"  # used up


def test_the_mail_speaks_the_accounts_language(app, client, smtp_server, owner):
    """An account reading Chinese gets the reset mail in Chinese."""
    owner.locale = "zh"
    commit_unit_of_work()
    post(client, "/password/forgot", {"email": owner.email})
    (message,) = smtp_server.wait(1)
    assert "密码" in message["Subject"] and "密码" in message.get_content()


def test_unknown_and_inactive_addresses_get_the_same_answer_and_no_mail(app, client, smtp_server, owner):
    """Nobody learns which addresses have accounts: an unknown or inactive address is answered the same, and no
    mail is sent."""
    owner.active = False
    commit_unit_of_work()
    for address in ("nobody@shop.example", owner.email):
        reply = post(client, "/password/forgot", {"email": address})
        assert reply.status_code == 302 and reply.headers["Location"] == "/login"
    assert db.session.query(OutgoingMail).count() == 0 and smtp_server.messages == []


def test_an_expired_or_forged_link_is_refused(app, client, owner, monkeypatch):
    """A link older than PASSWORD_RESET_SECONDS, signed with another key, or for another password, is refused."""
    token = accounts.reset_token(owner)
    app.config["PASSWORD_RESET_SECONDS"] = -1
    try:
        with pytest.raises(accounts.InvalidResetLink):
            accounts.user_for_reset(token)
    finally:
        app.config["PASSWORD_RESET_SECONDS"] = 3600
    forged = URLSafeTimedSerializer("another-key", salt="metropoints/password-reset/v1").dumps({"u": owner.id})
    for bad in (forged, token[:-2] + "xx", "not-a-token"):
        assert client.get(f"/password/reset/{bad}").status_code == 302
    accounts.change_password(user=owner, current=PASSWORD, new="changed-meanwhile")
    commit_unit_of_work()
    with pytest.raises(accounts.InvalidResetLink):
        accounts.user_for_reset(token)


def test_a_relay_that_does_not_answer_marks_the_mail_failed_not_the_request(app, client, owner):
    """Without Redis the mail job runs inline after the commit: an SMTP server that refuses connections marks the
    mail failed with its error, and the person asking still gets the page."""
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=9, MAIL_SUPPRESS_SEND=False)
    try:
        assert post(client, "/password/forgot", {"email": owner.email}).status_code == 302
    finally:
        app.config.update(MAIL_SERVER="localhost", MAIL_PORT=25, MAIL_SUPPRESS_SEND=True)
    record = db.session.query(OutgoingMail).one()
    assert record.status == MailStatus.failed and record.attempts == 1 and "Connection" in record.last_error


def test_password_and_profile_changes_and_the_last_sign_ins(app, client, owner):
    """The account page changes the name and mail language, and the password after the current one; it lists the
    account's sign-ins, newest first, with their address and browser."""
    for _ in range(2):
        fresh()
        client.post("/login", data={"email": owner.email, "password": PASSWORD},
                    headers={"User-Agent": "TestBrowser/1.0"})
    page = client.get("/account", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert page.count("TestBrowser/1.0") == 2 and "127.0.0.1" in page and "Merchant owner" in page
    wrong = post(client, "/account", {"password-current_password": "nope", "password-password": "new-password-1",
                                      "password-confirm": "new-password-1"})
    assert wrong.status_code == 422 and "not your current password" in wrong.get_data(as_text=True)
    differ = post(client, "/account", {"password-current_password": PASSWORD, "password-password": "new-password-1",
                                       "password-confirm": "new-password-2"})
    assert differ.status_code == 422
    ok = post(client, "/account", {"password-current_password": PASSWORD, "password-password": "new-password-1",
                                   "password-confirm": "new-password-1"})
    assert ok.status_code == 302
    assert post(client, "/account", {"profile-display_name": "Li Wei", "profile-locale": "zh"}).status_code == 302
    db.session.expire_all()
    assert (owner.display_name, owner.locale) == ("Li Wei", "zh")
    assert db.session.query(LoginEvent).filter_by(user_id=owner.id).count() == 2
    assert post(app.test_client(), "/login", {"email": owner.email, "password": "new-password-1"}).status_code == 302
