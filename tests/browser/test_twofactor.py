"""In a real browser: an operator's first sign-in leads to enrolment (QR code and key, confirmed with a code the test
computes like an authenticator app), then the password alone opens nothing, the app's code signs in, and a recovery
code signs in once (the second time it is refused)."""

from __future__ import annotations

import re
import time

import pyotp
import pytest

from metropoints.core.db import commit_unit_of_work
from metropoints.core.models import Role
from metropoints.core.operations import create_user

pytestmark = pytest.mark.browser
EMAIL, PASSWORD = "ops@metro.example", "operator-pass-1"


def submit(page, selector: str = "main form.form button[type=submit]") -> None:
    """Click a form's button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def password_step(page, base: str) -> None:
    """Fill the login form with the operator's e-mail and password and send it."""
    page.goto(f"{base}/login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    submit(page)


def signed_in(page) -> bool:
    """The page is the operator's, past the sign-in (its home, with its name in the header)."""
    return "/login" not in page.url and "/account/two-factor" not in page.url and "王运营" in page.inner_text("header")


def log_out(page) -> None:
    """The header's log-out button."""
    submit(page, "header form[action$='/logout'] button")


def test_operator_enrols_then_signs_in_with_the_code_or_a_recovery_code_once(app, live_server, browser, artifacts,
                                                                              strict):
    """enrolment forced after the password -> the app's code confirms it -> ten recovery codes; later the password
    alone is refused the back office, the code signs in; a recovery code signs in once, not twice."""
    create_user(email=EMAIL, password=PASSWORD, role=Role.operator, display_name="王运营")
    commit_unit_of_work()
    page = browser.new_page(viewport={"width": 1024, "height": 900}, locale="en-US")
    password_step(page, live_server)
    assert page.url.endswith("/account/two-factor")
    assert page.locator("figure.twofactor-qr svg path").count() >= 1
    secret = re.sub(r"\s", "", page.inner_text("code.twofactor-secret"))
    totp = pyotp.TOTP(secret)
    page.screenshot(path=str(artifacts / "twofactor-1-enrol.png"), full_page=True)
    page.fill("input[name=code]", totp.now())
    submit(page)
    codes = [text.strip() for text in page.locator("ul.recovery-codes code").all_inner_texts()]
    assert len(codes) == 10 and len(set(codes)) == 10
    page.screenshot(path=str(artifacts / "twofactor-2-recovery-codes.png"), full_page=True)
    with page.expect_navigation():
        page.click("main a.button")
    assert signed_in(page)

    log_out(page)
    password_step(page, live_server)
    assert page.url.endswith("/login/code")
    page.screenshot(path=str(artifacts / "twofactor-3-code-asked.png"), full_page=True)
    page.goto(f"{live_server}/portal/backoffice/merchants")
    assert "/login" in page.url and "/login/code" not in page.url  # the password alone opens nothing
    page.goto(f"{live_server}/login/code")
    page.fill("input[name=code]", totp.at(time.time() + 30))  # the next step's code: the enrolment took this one
    submit(page)
    assert signed_in(page)

    log_out(page)
    password_step(page, live_server)
    page.fill("input[name=code]", codes[0])
    submit(page)
    assert signed_in(page) and "recovery code" in page.inner_text(".flash")
    page.screenshot(path=str(artifacts / "twofactor-4-recovery-code-used.png"), full_page=True)

    log_out(page)
    password_step(page, live_server)
    page.fill("input[name=code]", codes[0])
    submit(page)
    assert page.url.endswith("/login/code") and "not valid" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "twofactor-5-recovery-code-refused.png"), full_page=True)
    page.close()
