"""Signing in to the portal: each role lands on its own home, an applicant is told the application is under review
(not "wrong password"), and failed attempts are limited per account and per address."""

from __future__ import annotations

from metropoints.core.db import db
from metropoints.core.models import User
from metropoints.marketplace.models import MerchantStatus
from tests.marketplace.conftest import PASSWORD, page


def owner_email(merchant) -> str:
    """The e-mail of a merchant's owner."""
    return db.session.get(User, merchant.owner_id).email


def sign_in(client, email: str, password: str = PASSWORD):
    """One attempt at the login form, in English."""
    return page(client, "/login", "POST", data={"email": email, "password": password})


def test_each_role_lands_on_its_own_home(app, create_operator, create_merchant, create_store, create_cashier):
    """Operator: the review queue; merchant owner: the dashboard; cashier: the counter page. A `next` page wins."""
    operator = create_operator()
    merchant = create_merchant()
    cashier = db.session.get(User, create_cashier(create_store(merchant)).user_id)
    homes = {operator.email: "/portal/campaigns/review", owner_email(merchant): "/portal",
             cashier.email: "/portal/counter"}
    for email, home in homes.items():
        reply = sign_in(app.test_client(), email)
        assert reply.status_code == 302 and reply.headers["Location"] == home, (email, reply.headers["Location"])
        assert page(app.test_client(), "/login?next=/portal/stores", "POST",
                    data={"email": email, "password": PASSWORD}).headers["Location"] == "/portal/stores"


def test_an_applicant_is_told_the_application_is_under_review(app, create_merchant):
    """With the right password before approval, the owner reads that the application is under review; with a
    wrong one, only "wrong e-mail or password" (nothing is told to someone without the password)."""
    applied = create_merchant(status=MerchantStatus.applied)
    right = sign_in(app.test_client(), owner_email(applied))
    assert right.status_code == 422 and "under review" in right.get_data(as_text=True)
    wrong = sign_in(app.test_client(), owner_email(applied), "not-the-password")
    assert wrong.status_code == 422 and "under review" not in wrong.get_data(as_text=True)
    assert "Wrong e-mail or password" in wrong.get_data(as_text=True)
    rejected = create_merchant(status=MerchantStatus.rejected)
    assert "not approved: test" in sign_in(app.test_client(), owner_email(rejected)).get_data(as_text=True)


def test_an_applicant_reads_it_in_chinese(app, create_merchant):
    """The explanation is translated like the rest of the login page."""
    applied = create_merchant(status=MerchantStatus.applied)
    reply = app.test_client().post("/login", data={"email": owner_email(applied), "password": PASSWORD})
    assert "审核" in reply.get_data(as_text=True)


def test_one_merchants_bad_tries_never_lock_out_another(app, create_merchant):
    """Ten failed tries lock that account for a while (429), from this address too; another merchant's owner at
    the same address still signs in, and a successful login does not count."""
    hammered, other = create_merchant(), create_merchant()
    codes = [sign_in(app.test_client(), owner_email(hammered), "wrong-pass").status_code for _ in range(11)]
    assert codes[:10] == [422] * 10 and codes[10] == 429
    assert sign_in(app.test_client(), owner_email(hammered)).status_code == 429  # locked, even with the password
    for _ in range(12):
        assert sign_in(app.test_client(), owner_email(other)).status_code == 302


def test_the_address_limit_stops_spraying_many_accounts(app, create_merchant):
    """Failed tries against many accounts from one address meet the (higher) per-address limit."""
    app.config["LOGIN_ADDRESS_RATE_LIMIT"] = "15 per minute"
    try:
        codes = [sign_in(app.test_client(), f"nobody{n}@shop.example", "wrong-pass").status_code for n in range(16)]
    finally:
        app.config["LOGIN_ADDRESS_RATE_LIMIT"] = "60 per minute"
    assert codes[:15] == [422] * 15 and codes[15] == 429
