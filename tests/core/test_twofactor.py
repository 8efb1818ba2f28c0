"""The second factor: TOTP enrolment with a QR code and a first code, sign-in asking for the code after the password
(±1 step, never the same code twice), ten single-use recovery codes stored hashed, secrets encrypted at rest;
required of operators (sent to enrolment, nothing else open), optional for owners, required of cashiers by their
owner's choice; an operator resets another account's second factor, audited.

The helpers here (a fresh request context, sign-in, enrolment) serve test_sessions and test_step_up; the `clock` and
`strict` fixtures are in tests/conftest.py."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pyotp
import pytest
from flask import g
from flask_babel import refresh
from sqlalchemy import select

from metropoints.core import twofactor
from metropoints.core.config import DefaultConfig
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import AuditEntry, RecoveryCode, Role, User, UserSession
from metropoints.core.operations import create_user
from metropoints.marketplace.models import Merchant
from tests.helpers import run_at_once

PASSWORD = "password123"
EN = {"Accept-Language": "en"}


def fresh() -> None:
    """Forget the last request's locale, user and session: the test's app context outlives requests."""
    refresh()
    g.pop("_login_user", None)
    g.pop("_user_session", None)


def send(client, path: str, method: str = "GET", **kwargs):
    """A request in English from a fresh context."""
    fresh()
    return client.open(path, method=method, headers={**EN, **kwargs.pop("headers", {})}, **kwargs)


def make_user(role: Role = Role.operator, email: str | None = None) -> User:
    """A committed portal account with PASSWORD."""
    user = create_user(email=email or f"{role.value}@metro.example", password=PASSWORD, role=role)
    commit_unit_of_work()
    return user


def secret_on(page: str) -> str:
    """The key the enrolment page shows (in groups of four), as an app takes it."""
    return re.sub(r"<[^>]+>|\s", "", re.search(r'class="twofactor-secret">(.*?)</code>', page).group(1))


def code_at(secret: str, moment: datetime) -> str:
    """What an authenticator app shows at a moment."""
    return pyotp.TOTP(secret).at(moment)


def enrol(user: User, clock) -> tuple[str, list[str]]:
    """Give an account a second factor directly (secret, recovery codes); the clock moves to the next step, so the
    enrolment's code is not the one sign-in sees."""
    secret = twofactor.new_secret()
    codes = twofactor.enrol(user=user, secret=secret, code=code_at(secret, clock.now), keep=None)
    commit_unit_of_work()
    clock.advance(seconds=30)
    return secret, codes


def password_step(client, user: User, next_url: str = ""):
    """Type the account's e-mail and password on the login page."""
    return send(client, "/login" + (f"?next={next_url}" if next_url else ""), "POST",
                data={"email": user.email, "password": PASSWORD})


def sign_in(client, user: User, secret: str | None, clock) -> None:
    """Sign in through the pages: the password, then (with a secret) the app's current code."""
    reply = password_step(client, user)
    assert reply.status_code == 302
    if secret is not None:
        assert reply.headers["Location"] == "/login/code"
        reply = send(client, "/login/code", "POST", data={"code": code_at(secret, clock.now)})
        assert reply.status_code == 302, reply.get_data(as_text=True)
    assert not reply.headers["Location"].startswith(("/login", "/account/two-factor"))


def test_an_operator_without_a_second_factor_must_enrol_first(app, client, strict, clock):
    """Production's rule: an operator's password leads to enrolment and nothing else (the back office sends them to
    sign in); the page shows the secret as a QR code and as text, a wrong code is refused, the app's code enrols,
    the ten recovery codes are shown once, and only then the session starts (audited)."""
    operator = make_user()
    reply = password_step(client, operator, next_url="/portal/backoffice/merchants")
    assert reply.status_code == 302 and reply.headers["Location"] == "/account/two-factor"
    assert send(client, "/portal/backoffice/merchants").headers["Location"].startswith("/login")
    assert send(client, "/account").headers["Location"].startswith("/login")
    page = send(client, "/account/two-factor").get_data(as_text=True)
    assert "<svg" in page and "<path" in page
    secret = secret_on(page)
    assert len(secret) == 32 and send(client, "/account/two-factor").get_data(as_text=True).count(secret[:4]) >= 1
    wrong = send(client, "/account/two-factor", "POST", data={"code": "000000" if code_at(secret, clock.now) != "000000"
                                                               else "111111"})
    assert wrong.status_code == 422 and db.session.get(User, operator.id).totp_secret is None
    done = send(client, "/account/two-factor", "POST", data={"code": code_at(secret, clock.now)})
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", done.get_data(as_text=True))
    assert len(codes) == 10 == len(set(codes))
    assert 'href="/portal/backoffice/merchants"' in done.get_data(as_text=True)
    assert send(client, "/portal/backoffice/merchants").status_code == 200
    stored = db.session.get(User, operator.id)
    assert stored.has_second_factor and secret not in stored.totp_secret
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.actor_id == operator.id)) == \
        "account.second_factor_on"


def test_production_requires_a_second_factor_of_every_operator(app):
    """The default configuration requires it; the tests' relaxation is honoured only under TESTING."""
    assert not hasattr(DefaultConfig, "TESTING_OPERATORS_WITHOUT_SECOND_FACTOR")
    operator = make_user()
    assert not twofactor.required_for(operator)  # these tests' own relaxation
    app.testing = False
    try:
        assert twofactor.required_for(operator)
    finally:
        app.testing = True
    assert not twofactor.required_for(make_user(Role.merchant_owner))


def test_sign_in_asks_for_the_code_and_takes_each_code_once(app, client, strict, clock):
    """With a second factor, the password half signs in (nothing opens), the app's code finishes it; the same code
    typed again (another browser, within its 90 seconds) is refused, the next step's code works."""
    operator = make_user()
    secret, _ = enrol(operator, clock)
    assert password_step(client, operator).headers["Location"] == "/login/code"
    assert send(client, "/portal/backoffice/merchants").headers["Location"].startswith("/login")
    assert send(client, "/login/code", "POST", data={"code": "12345"}).status_code == 422
    sign_in_code = code_at(secret, clock.now)
    assert send(client, "/login/code", "POST", data={"code": sign_in_code}).status_code == 302
    assert send(client, "/portal/backoffice/merchants").status_code == 200
    other = app.test_client()
    password_step(other, operator)
    replay = send(other, "/login/code", "POST", data={"code": sign_in_code})
    assert replay.status_code == 422 and "not valid" in replay.get_data(as_text=True)
    clock.advance(seconds=30)
    assert send(other, "/login/code", "POST", data={"code": code_at(secret, clock.now)}).status_code == 302


def test_a_code_is_good_one_step_either_side(app, clock):
    """A code of the step before or after now is accepted (clock drift); two steps off is not."""
    secret = twofactor.new_secret()
    now = clock.now
    for offset, good in ((-30, True), (0, True), (30, True), (-60, False), (60, False)):
        found = twofactor.matching_step(secret, code_at(secret, now + timedelta(seconds=offset)), now)
        assert (found is not None) == good, offset


def test_the_code_page_without_a_password_first_or_after_five_minutes(app, client, strict, clock):
    """The half-signed-in state is made only by the password and lasts SIGNIN_PENDING_SECONDS."""
    operator = make_user()
    secret, _ = enrol(operator, clock)
    assert send(client, "/login/code", "POST", data={"code": code_at(secret, clock.now)}).headers["Location"] \
        == "/login"
    password_step(client, operator)
    clock.advance(seconds=app.config["SIGNIN_PENDING_SECONDS"] + 1)
    late = send(client, "/login/code", "POST", data={"code": code_at(secret, clock.now)})
    assert late.status_code == 302 and late.headers["Location"] == "/login"


def test_a_recovery_code_signs_in_once(app, client, strict, clock):
    """A recovery code stands in for the app's code, once; the codes are stored as salted hashes only."""
    operator = make_user()
    _, codes = enrol(operator, clock)
    rows = db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == operator.id)).all()
    assert len(rows) == 10 and not any(code.replace("-", "") in row.code_hash for row in rows for code in codes)
    assert len({row.salt for row in rows}) == 10
    password_step(client, operator)
    used = send(client, "/login/code", "POST", data={"code": codes[3].upper()})
    assert used.status_code == 302 and send(client, "/portal/backoffice/merchants").status_code == 200
    other = app.test_client()
    password_step(other, operator)
    assert send(other, "/login/code", "POST", data={"code": codes[3]}).status_code == 422
    assert send(other, "/login/code", "POST", data={"code": codes[4].replace("-", " ")}).status_code == 302
    assert twofactor.unused_recovery_codes(operator) == 8


def test_the_secret_is_encrypted_with_a_key_from_the_secret_key(app, clock):
    """The stored secret is Fernet ciphertext: unreadable under another SECRET_KEY, readable again when the old key
    is among SECRET_KEY_FALLBACKS."""
    sealed = twofactor.seal("JBSWY3DPEHPK3PXP")
    assert "JBSWY3DP" not in sealed and twofactor.unseal(sealed) == "JBSWY3DPEHPK3PXP"
    old = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "another-secret"
    try:
        assert twofactor.unseal(sealed) is None
        app.config["SECRET_KEY_FALLBACKS"] = [old]
        assert twofactor.unseal(sealed) == "JBSWY3DPEHPK3PXP"
    finally:
        app.config["SECRET_KEY"], app.config["SECRET_KEY_FALLBACKS"] = old, []


def test_an_owner_may_enrol_renew_codes_and_turn_it_off(app, client, clock):
    """For an owner the second factor is optional: the password signs in; enrolled from the account page, sign-in
    asks for the code; new recovery codes replace the old; turning it off returns to the password only."""
    owner = make_user(Role.merchant_owner, "owner@shop.example")
    sign_in(client, owner, None, clock)
    page = send(client, "/account/two-factor").get_data(as_text=True)
    secret = secret_on(page)
    first = send(client, "/account/two-factor", "POST", data={"code": code_at(secret, clock.now)})
    old_codes = re.findall(r"<code>([a-z2-9-]{11})</code>", first.get_data(as_text=True))
    assert len(old_codes) == 10 and "Recovery codes left: 10." in send(client, "/account").get_data(as_text=True)
    renewed = send(client, "/account/two-factor/recovery-codes", "POST")
    new_codes = re.findall(r"<code>([a-z2-9-]{11})</code>", renewed.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    clock.advance(seconds=30)
    other = app.test_client()
    password_step(other, owner)
    assert send(other, "/login/code", "POST", data={"code": old_codes[0]}).status_code == 422
    assert send(client, "/account/two-factor/off", "POST").status_code == 302
    assert not db.session.get(User, owner.id).has_second_factor
    assert password_step(app.test_client(), owner).headers["Location"] == "/portal"


def test_an_owner_requires_a_second_factor_of_the_cashiers(app, client, create_shop, clock):
    """The staff page's setting: the merchant's cashiers are sent to enrolment at their next sign-in and cannot turn
    it off; the owner stays free; turned back, cashiers sign in with the password only."""
    shop = create_shop()
    sign_in(client, shop.owner, None, clock)
    assert "Require a second factor of cashiers" in send(client, "/portal/staff").get_data(as_text=True)
    assert send(client, "/portal/staff/second-factor", "POST", data={"required": "1"}).status_code == 302
    assert db.session.get(Merchant, shop.merchant.id).cashiers_need_second_factor
    cashier = app.test_client()
    assert password_step(cashier, shop.cashier).headers["Location"] == "/account/two-factor"
    assert send(cashier, "/portal/counter").headers["Location"].startswith("/login")
    assert not twofactor.required_for(shop.owner)
    with pytest.raises(twofactor.SecondFactorRequired):
        twofactor.turn_off(user=shop.cashier, keep=None)
    assert send(client, "/portal/staff/second-factor", "POST", data={"required": "0"}).status_code == 302
    assert password_step(app.test_client(), shop.other_cashier).headers["Location"] != "/account/two-factor"
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"merchant.cashier_second_factor_on", "merchant.cashier_second_factor_off"} <= actions


def test_an_operator_resets_another_accounts_second_factor(app, client, strict, clock, create_shop):
    """The back office's accounts page: an operator resets an owner's lost second factor with a reason; the owner's
    sessions end, its secret and recovery codes are gone, the reset is audited; one's own is refused, and only
    operators may."""
    shop = create_shop()
    owner_secret, _ = enrol(shop.owner, clock)
    owner_browser = app.test_client()
    sign_in(owner_browser, shop.owner, owner_secret, clock)
    operator = make_user()
    operator_secret, _ = enrol(operator, clock)
    sign_in(client, operator, operator_secret, clock)
    listing = send(client, f"/backoffice/accounts?email={shop.owner.email[:6]}").get_data(as_text=True)
    assert shop.owner.email in listing and "Reset the second factor" in listing
    reset = send(client, f"/backoffice/accounts/{shop.owner.id}/second-factor/reset", "POST",
                 data={"reason": "phone lost, called from the shop's number"})
    assert reset.status_code == 302
    owner = db.session.get(User, shop.owner.id)
    assert owner.totp_secret is None and twofactor.unused_recovery_codes(owner) == 0
    assert send(owner_browser, "/portal").headers["Location"].startswith("/login")
    assert db.session.scalar(select(UserSession.id).where(UserSession.user_id == owner.id,
                                                          UserSession.ended_at.is_(None))) is None
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "account.second_factor_reset"))
    assert (entry.actor_id, entry.subject) == (operator.id, f"user:{owner.id}") and "phone lost" in entry.reason
    assert password_step(app.test_client(), owner).headers["Location"] == "/portal"
    with pytest.raises(twofactor.ResetOwnSecondFactor):
        twofactor.reset(actor=operator, user=operator)
    send(client, f"/backoffice/accounts/{operator.id}/second-factor/reset", "POST", data={"reason": "mine"})
    assert db.session.get(User, operator.id).has_second_factor
    assert send(owner_browser, f"/backoffice/accounts/{operator.id}/second-factor/reset", "POST",
                data={"reason": "x"}).status_code in (302, 403)
    assert db.session.get(User, operator.id).has_second_factor


def test_two_requests_with_one_code_at_once_take_it_once(app, clock):
    """The guarded UPDATE of the last step decides between two requests racing with the same code: one wins."""
    operator = make_user()
    secret, _ = enrol(operator, clock)
    code = code_at(secret, clock.now)

    def attempt() -> str:
        """Check the code in a unit of work of its own."""
        kind = twofactor.check_code(user=db.session.get(User, operator.id), code=code)
        commit_unit_of_work()
        return kind

    results = run_at_once(app, [attempt, attempt])
    assert results.count("totp") == 1 and sum(isinstance(result, twofactor.WrongCode) for result in results) == 1


def test_codes_are_taken_once_on_sqlite(sqlite_app, clock):
    """The same enrolment, single-use code and recovery code on SQLite (`make run`)."""
    user = make_user(Role.merchant_owner, "owner@shop.example")
    secret, codes = enrol(user, clock)
    assert twofactor.check_code(user=user, code=code_at(secret, clock.now)) == "totp"
    commit_unit_of_work()
    with pytest.raises(twofactor.WrongCode):
        twofactor.check_code(user=user, code=code_at(secret, clock.now))
    assert twofactor.check_code(user=user, code=codes[0]) == "recovery"
    commit_unit_of_work()
    with pytest.raises(twofactor.WrongCode):
        twofactor.check_code(user=user, code=codes[0])
