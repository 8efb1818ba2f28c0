"""In a real browser, in Chinese: a merchant owner who forgot the password asks for a link, the mail arrives at a
real SMTP server, the link sets a new password, and the new password logs in (the old one no longer does)."""

from __future__ import annotations

import re

import pytest

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Role, User
from metropoints.core.operations import create_user
from metropoints.marketplace.models import Category
from metropoints.marketplace.operations import apply_merchant, decide_merchant

pytestmark = pytest.mark.browser
EMAIL, OLD, NEW = "owner@shop.example", "old-password-1", "brand-new-pass-2"


def submit(page, selector: str = "form.form button[type=submit]") -> None:
    """Click a form's button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def log_in(page, base: str, password: str) -> None:
    """Fill the login form and send it."""
    page.goto(f"{base}/login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", password)
    submit(page)


def test_forgot_password_mail_new_password_login(app, live_server, browser, artifacts, smtp_server):
    """forgot password -> the mail (in the account's language) -> its link -> a new password -> login works with
    the new password only; every page on the way is Chinese."""
    operator = create_user(email="ops@metro.example", password=OLD, role=Role.operator)
    merchant = apply_merchant(name="老边饺子馆", category=Category.dining, contact_name="李明",
                              contact_phone="13800000001", licence_no="91210100MA00000001", email=EMAIL, password=OLD)
    decide_merchant(actor=operator, merchant=merchant, decision="approve")
    owner = db.session.get(User, merchant.owner_id)
    owner.display_name = "李老板"
    commit_unit_of_work()
    smtp_server.messages.clear()  # the application's and the approval's mails
    page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
    page.goto(f"{live_server}/login")
    with page.expect_navigation():
        page.click("a[href$='/password/forgot']")
    assert "忘记密码" in page.inner_text("h1")
    page.fill("input[name=email]", "Owner@Shop.example")
    page.screenshot(path=str(artifacts / "password-reset-1-forgot.png"), full_page=True)
    submit(page)
    assert page.url.endswith("/login") and "链接" in page.inner_text(".flash")

    (message,) = smtp_server.wait(1)
    assert message["To"] == owner.email and "密码" in message["Subject"]
    path = re.search(r"https?://[^/\s]+(/password/reset/\S+)", message.get_content()).group(1)
    page.goto(live_server + path)
    assert "设置新密码" in page.inner_text("h1")
    page.fill("input[name=password]", NEW)
    page.fill("input[name=confirm]", NEW)
    page.screenshot(path=str(artifacts / "password-reset-2-new-password.png"), full_page=True)
    submit(page)
    assert page.url.endswith("/login") and page.locator(".flash").count() == 1

    log_in(page, live_server, OLD)
    assert "/login" in page.url and "邮箱或密码错误" in page.inner_text("main")
    log_in(page, live_server, NEW)
    assert page.url.endswith("/portal")
    assert "李老板" in page.inner_text("header")
    page.screenshot(path=str(artifacts / "password-reset-3-logged-in.png"), full_page=True)
    page.close()
