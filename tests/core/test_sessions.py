"""Sessions that end: a server-side row per signed-in browser, checked in the query that loads the user; idle
timeouts and lifetimes by role on a controllable clock; a new id at each sign-in; a password change ends the other
sessions; the account page lists them and signs out one or all the others; a remember-me cookie alone is nobody."""

from __future__ import annotations

from datetime import timedelta

from flask_login.utils import encode_cookie
from sqlalchemy import event, select

from metropoints.core import accounts, sessions
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Role, User, UserSession
from tests.core.test_twofactor import PASSWORD, make_user, send, sign_in


def sid_of(client) -> str:
    """The session id the browser's cookie carries."""
    with client.session_transaction() as cookie:
        return cookie.get(sessions.COOKIE_KEY)


def row_of(raw: str) -> UserSession:
    """The session row of a raw id, as stored now."""
    db.session.expire_all()
    return db.session.scalar(select(UserSession).where(UserSession.token_hash == sessions.hash_session_id(raw)))


def signed_in(client) -> bool:
    """Whether the browser's session still opens the account page."""
    return send(client, "/account").status_code == 200


def test_sign_in_makes_a_new_session_id_and_ends_the_old_one(app, client, clock):
    """No fixation: an id planted before the sign-in is dropped, each sign-in gets a fresh id (only its hash is
    stored), and signing in again ends the browser's previous session, whose id then opens nothing."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    with client.session_transaction() as cookie:
        cookie[sessions.COOKIE_KEY] = "planted-by-someone-else"
    sign_in(client, owner, None, clock)
    first = sid_of(client)
    assert first != "planted-by-someone-else" and row_of(first).token_hash != first
    sign_in(client, owner, None, clock)
    second = sid_of(client)
    assert second != first and row_of(first).end_reason == "signed_in_again" and row_of(second).ended_at is None
    thief = app.test_client()
    with client.session_transaction() as cookie:
        stolen = dict(cookie)
    with thief.session_transaction() as cookie:
        cookie.update({**stolen, sessions.COOKIE_KEY: first})
    assert not signed_in(thief) and signed_in(client)


def test_an_operator_session_ends_after_30_idle_minutes(app, client, clock):
    """Operators: a request within 30 minutes keeps the session; 30 minutes without one end it (marked idle)."""
    operator = make_user()
    sign_in(client, operator, None, clock)
    raw = sid_of(client)
    clock.advance(minutes=29)
    assert signed_in(client)
    clock.advance(minutes=29)
    assert signed_in(client)
    clock.advance(minutes=30)
    reply = send(client, "/portal/backoffice/merchants")
    assert reply.status_code == 302 and reply.headers["Location"].startswith("/login")
    assert row_of(raw).end_reason == "idle"


def test_an_owner_session_lasts_8_idle_hours(app, client, clock):
    """Others: 8 idle hours (default), not 30 minutes."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    sign_in(client, owner, None, clock)
    clock.advance(hours=7, minutes=59)
    assert signed_in(client)
    clock.advance(hours=8)
    assert not signed_in(client)


def test_a_session_ends_at_its_lifetime_however_busy(app, client, clock):
    """An operator's session ends 12 hours after the sign-in even with a request every 20 minutes; an owner's after
    7 days."""
    operator = make_user()
    sign_in(client, operator, None, clock)
    for _ in range(35):
        clock.advance(minutes=20)
        assert signed_in(client)
    clock.advance(minutes=20)
    assert not signed_in(client) and row_of(sid_of(client)).end_reason == "expired"
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    browser = app.test_client()
    sign_in(browser, owner, None, clock)
    for _ in range(20):
        clock.advance(hours=7)
        assert signed_in(browser)
    clock.advance(days=2)
    assert not signed_in(browser)


def test_last_seen_is_written_at_most_once_a_minute(app, client, clock):
    """A request within a minute of the last write leaves last_seen_at; a later one moves it."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    sign_in(client, owner, None, clock)
    raw = sid_of(client)
    start = row_of(raw).last_seen_at
    clock.advance(seconds=50)
    assert signed_in(client) and row_of(raw).last_seen_at == start
    clock.advance(seconds=20)
    assert signed_in(client) and row_of(raw).last_seen_at == clock.now


def test_the_user_and_the_session_come_in_one_query(app, client, clock):
    """The loader reads the account and its session row with one statement."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    sign_in(client, owner, None, clock)
    raw, owner_id = sid_of(client), owner.id
    db.session.expunge_all()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        found = sessions.load(user_id=owner_id, raw=raw)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert found is not None and found[0].id == owner_id and len(statements) == 1
    assert "user_sessions" in statements[0] and "users" in statements[0]


def test_a_password_change_ends_the_other_sessions(app, client, clock):
    """Changing the password on one browser signs every other browser of the account out; the changing one stays.
    A reset through the e-mail link ends them all."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    other = app.test_client()
    sign_in(client, owner, None, clock)
    sign_in(other, owner, None, clock)
    changed = send(client, "/account", "POST", data={"password-current_password": PASSWORD,
                                                     "password-password": "brand-new-pass",
                                                     "password-confirm": "brand-new-pass"})
    assert changed.status_code == 302
    assert signed_in(client) and not signed_in(other)
    assert row_of(sid_of(other)).end_reason == "password"
    accounts.reset_password(token=accounts.reset_token(db.session.get(User, owner.id)), password="newer-password")
    commit_unit_of_work()
    assert not signed_in(client)


def test_the_account_page_lists_sessions_and_signs_out_elsewhere(app, client, clock):
    """The account page lists live sessions (device, address, last seen; "This device"); one other session can be
    ended, or all others at once; another account's session cannot."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    phone, tablet = app.test_client(), app.test_client()
    sign_in(client, owner, None, clock)
    for browser, agent in ((phone, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"),
                           (tablet, "Mozilla/5.0 (Linux; Android 14) Chrome/120.0 Mobile Safari/537.36")):
        send(browser, "/login", "POST", data={"email": owner.email, "password": PASSWORD},
             headers={"User-Agent": agent})
    page = send(client, "/account").get_data(as_text=True)
    assert "This device" in page and "Safari · iOS" in page and "Chrome · Android" in page and "127.0.0.1" in page
    phone_row = row_of(sid_of(phone))
    assert send(client, f"/account/sessions/{phone_row.id}/end", "POST").status_code == 302
    assert not signed_in(phone) and signed_in(tablet)
    stranger = make_user(Role.merchant_owner, "stranger@shop.example")
    strange = app.test_client()
    sign_in(strange, stranger, None, clock)
    assert send(strange, f"/account/sessions/{row_of(sid_of(tablet)).id}/end", "POST").status_code == 404
    assert signed_in(tablet)
    assert send(client, "/account/sessions/end-others", "POST").status_code == 302
    assert not signed_in(tablet) and signed_in(client)
    assert len(sessions.live_sessions(owner)) == 1


def test_sign_out_ends_the_session_row(app, client, clock):
    """Logging out ends the row: the same cookie replayed opens nothing."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    sign_in(client, owner, None, clock)
    with client.session_transaction() as cookie:
        saved = dict(cookie)
    send(client, "/logout", "POST")
    assert row_of(saved[sessions.COOKIE_KEY]).end_reason == "signed_out"
    replay = app.test_client()
    with replay.session_transaction() as cookie:
        cookie.update(saved)
    assert not signed_in(replay)


def test_a_remember_me_cookie_alone_signs_nobody_in(app, client, clock):
    """Flask-Login's remember cookie (validly signed) without a live session row is not a sign-in."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    with app.test_request_context():
        value = encode_cookie(str(owner.id))
    client.set_cookie(app.config.get("REMEMBER_COOKIE_NAME", "remember_token"), value)
    assert not signed_in(client)


def test_sessions_on_sqlite(sqlite_app, clock):
    """The same sign-in, session row and idle timeout on SQLite (`make run`)."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    client = sqlite_app.test_client()
    sign_in(client, owner, None, clock)
    assert signed_in(client)
    clock.advance(hours=9)
    assert not signed_in(client)
    assert sessions.expiry_of(row_of(sid_of(client)), Role.merchant_owner, clock.now + timedelta(0)) == "idle"
