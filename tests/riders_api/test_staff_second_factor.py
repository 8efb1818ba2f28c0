"""The POS's staff token and the second factor: an account with one sends `otp` (the app's current code or an unused
recovery code, each taken once, as on the portal's code page) or gets 401 `second_factor_required`; a cashier whose
owner requires one and who has none gets 403 `second_factor_not_enrolled`; a wrong code counts against the portal's
code limit; an account without any requirement signs in with the password alone, as before."""

from __future__ import annotations

from flask import current_app
from limits import parse

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.extensions import limiter
from metropoints.core.models import ApiToken, TokenKind
from metropoints.marketplace.models import Merchant
from tests.conftest import SHOP_PASSWORD
from tests.core.test_twofactor import code_at, enrol

PATH = "/api/v1/staff/token"


def ask(client, user, **extra):
    """The POS's sign-in for a portal account, with any extra fields (`otp`)."""
    return client.post(PATH, json={"email": user.email, "password": SHOP_PASSWORD, **extra})


def staff_tokens(user) -> int:
    """How many staff tokens the account has."""
    return db.session.query(ApiToken).filter_by(kind=TokenKind.staff, subject_id=user.id).count()


def test_an_enrolled_cashier_needs_the_current_code(app, client, create_shop, clock):
    """With a second factor the password alone is refused (401 `second_factor_required`, no token made); the app's
    current code gives a token."""
    shop = create_shop()
    secret, _ = enrol(shop.cashier, clock)
    without = ask(client, shop.cashier)
    assert without.status_code == 401
    assert without.get_json()["error"]["code"] == "second_factor_required"
    assert "otp" in without.get_json()["error"]["message"]
    assert staff_tokens(shop.cashier) == 0
    reply = ask(client, shop.cashier, otp=code_at(secret, clock.now))
    assert reply.status_code == 200 and reply.get_json()["token"].startswith("st_")
    assert staff_tokens(shop.cashier) == 1


def test_a_wrong_or_replayed_code_is_refused(app, client, create_shop, clock):
    """A code that is not the app's current one, not six digits, or already used (here or on the portal) is 401
    `second_factor_required`, and no token is made."""
    shop = create_shop()
    secret, _ = enrol(shop.cashier, clock)
    current = code_at(secret, clock.now)
    wrong = "000000" if current != "000000" else "111111"
    for otp in (wrong, "12345", "not-a-code"):
        reply = ask(client, shop.cashier, otp=otp)
        assert reply.status_code == 401, otp
        assert reply.get_json()["error"]["code"] == "second_factor_required"
    assert ask(client, shop.cashier, otp=current).status_code == 200
    replayed = ask(client, shop.cashier, otp=current)
    assert replayed.status_code == 401 and replayed.get_json()["error"]["code"] == "second_factor_required"
    assert staff_tokens(shop.cashier) == 1


def test_a_recovery_code_is_taken_once(app, client, create_shop, clock):
    """An unused recovery code stands in for the app's code, once."""
    shop = create_shop()
    _, codes = enrol(shop.cashier, clock)
    assert ask(client, shop.cashier, otp=codes[0]).status_code == 200
    assert ask(client, shop.cashier, otp=codes[0]).status_code == 401


def test_a_wrong_code_counts_against_the_code_pages_limit(app, client, create_shop, clock):
    """The API's codes and the portal's code page share one limit per account (LOGIN_RATE_LIMIT): once it is spent,
    even the right code gets 429."""
    shop = create_shop()
    secret, _ = enrol(shop.cashier, clock)
    assert ask(client, shop.cashier, otp="000000" if code_at(secret, clock.now) != "000000" else "1"
               ).status_code == 401
    item = parse(current_app.config["LOGIN_RATE_LIMIT"])
    while limiter.limiter.hit(item, "sign-in-code", str(shop.cashier.id)):  # the portal's code page's attempts
        pass
    assert ask(client, shop.cashier, otp=code_at(secret, clock.now)).status_code == 429
    assert staff_tokens(shop.cashier) == 0


def test_a_cashier_who_must_have_a_second_factor_enrols_first(app, client, create_shop, clock):
    """A cashier whose owner requires a second factor and who has none gets 403 `second_factor_not_enrolled`
    (enrol in the portal), with or without an `otp`; the owner, to whom the requirement does not apply, still signs
    in with the password."""
    shop = create_shop()
    db.session.get(Merchant, shop.merchant.id).cashiers_need_second_factor = True
    commit_unit_of_work()
    for extra in ({}, {"otp": "123456"}):
        reply = ask(client, shop.cashier, **extra)
        assert reply.status_code == 403
        body = reply.get_json()["error"]
        assert body["code"] == "second_factor_not_enrolled" and "portal" in body["message"]
    assert staff_tokens(shop.cashier) == 0
    assert ask(client, shop.owner).status_code == 200


def test_without_a_second_factor_the_password_is_enough(app, client, create_shop):
    """A cashier with no second factor and no requirement signs in with the password, as before; an `otp` sent
    anyway is ignored; a wrong password is still 401 `bad_credentials`."""
    shop = create_shop()
    assert ask(client, shop.cashier).status_code == 200
    assert ask(client, shop.cashier, otp="123456").status_code == 200
    wrong = client.post(PATH, json={"email": shop.cashier.email, "password": "wrong-password", "otp": "123456"})
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "bad_credentials"
