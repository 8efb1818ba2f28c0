"""Step-up before money and points move: fee plans, rule versions, a merchant's suspension, an invoice sent again and
a second-factor reset ask for the code again when the session's last check is older than STEP_UP_SECONDS (10
minutes), on a controllable clock; the form typed is posted again with the code, so nothing is lost; an account
without a second factor types its password instead."""

from __future__ import annotations

import re

from sqlalchemy import select

from metropoints.core.db import db
from metropoints.core.models import Role, User
from metropoints.marketplace.models import Merchant, MerchantStatus
from metropoints.settlement.models import FeePlan
from tests.core.test_twofactor import PASSWORD, code_at, enrol, make_user, send, sign_in

FEES = {"fee_per_coupon": "1.50", "monthly_fee": "0.29"}


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of the check page (the form posted again)."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def signed_in_operator(app, client, clock):
    """An operator with a second factor, signed in with its code; (user, secret)."""
    operator = make_user()
    secret, _ = enrol(operator, clock)
    sign_in(client, operator, secret, clock)
    return operator, secret


def test_a_fresh_check_lets_a_fee_change_through(app, client, strict, clock, create_shop):
    """Within 10 minutes of the sign-in's code, a fee plan is saved without another question."""
    shop = create_shop()
    signed_in_operator(app, client, clock)
    clock.advance(minutes=9)
    reply = send(client, "/backoffice/fees", "POST", data={"merchant_id": str(shop.merchant.id), **FEES})
    assert reply.status_code == 302 and db.session.scalar(select(FeePlan)) is not None


def test_a_stale_check_asks_for_the_code_and_keeps_the_form(app, client, strict, clock, create_shop):
    """After 10 minutes the fee form comes back as a check page carrying what was typed; a wrong code saves
    nothing, the app's current code saves the plan; for the next 10 minutes nothing is asked again."""
    shop = create_shop()
    _, secret = signed_in_operator(app, client, clock)
    clock.advance(minutes=10, seconds=1)
    asked = send(client, "/backoffice/fees", "POST", data={"merchant_id": str(shop.merchant.id), **FEES})
    html = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "Confirm it is you" in html and db.session.scalar(select(FeePlan)) is None
    carried = hidden_fields(html)
    assert carried["fee_per_coupon"] == "1.50" and carried["monthly_fee"] == "0.29"
    assert carried["merchant_id"] == str(shop.merchant.id) and carried["step_up-check"] == "1"
    wrong = send(client, "/backoffice/fees", "POST", data={**carried, "step_up-code": "000000"
                                                           if code_at(secret, clock.now) != "000000" else "111111"})
    assert wrong.status_code == 422 and hidden_fields(wrong.get_data(as_text=True))["fee_per_coupon"] == "1.50"
    assert db.session.scalar(select(FeePlan)) is None
    done = send(client, "/backoffice/fees", "POST", data={**carried, "step_up-code": code_at(secret, clock.now)})
    assert done.status_code == 302 and db.session.scalar(select(FeePlan)).fee_per_coupon_fen == 150
    clock.advance(minutes=9)
    again = send(client, "/backoffice/fees", "POST", data={"merchant_id": str(shop.merchant.id),
                                                           "fee_per_coupon": "2", "monthly_fee": "0"})
    assert again.status_code == 302


def test_a_code_taken_by_a_check_survives_a_refused_form(app, client, strict, clock, create_shop):
    """A check that passes before a form the rules refuse (422, rolled back) still counts: the session stays checked
    and the code stays used."""
    shop = create_shop()
    operator, secret = signed_in_operator(app, client, clock)
    clock.advance(minutes=11)
    code = code_at(secret, clock.now)
    refused = send(client, "/backoffice/fees", "POST", data={"merchant_id": str(shop.merchant.id),
                                                             "fee_per_coupon": "-1", "monthly_fee": "0",
                                                             "step_up-check": "1", "step_up-code": code})
    assert refused.status_code == 422 and "negative" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, operator.id).totp_last_step == int(clock.now.timestamp()) // 30
    fixed = send(client, "/backoffice/fees", "POST", data={"merchant_id": str(shop.merchant.id), **FEES})
    assert fixed.status_code == 302
    clock.advance(minutes=11)
    replay = send(client, "/backoffice/fees", "POST", data={"merchant_id": str(shop.merchant.id), **FEES,
                                                            "step_up-check": "1", "step_up-code": code})
    assert replay.status_code == 422


def test_suspension_rules_invoices_and_resets_ask_approval_does_not(app, client, strict, clock, create_shop):
    """With a stale check: suspending a merchant, adding a rule version, sending an invoice again and resetting a
    second factor show the check page and change nothing; approving an application does not ask."""
    shop, applied = create_shop(), create_shop(status=MerchantStatus.applied)
    signed_in_operator(app, client, clock)
    clock.advance(minutes=15)
    for path, data in ((f"/portal/backoffice/merchants/{shop.merchant.id}/decision",
                        {"decision": "suspend", "reason": "unpaid bills"}),
                       ("/backoffice/rules", {"points_per_km": "2", "daily_cap": "50", "co2e_factor": "30",
                                              "factor_name": "x", "note": "y"}),
                       ("/backoffice/statements/1/retry", {}),
                       (f"/backoffice/accounts/{shop.owner.id}/second-factor/reset", {"reason": "lost"})):
        reply = send(client, path, "POST", data=data)
        assert reply.status_code == 200 and "step_up-check" in reply.get_data(as_text=True), path
    assert db.session.get(Merchant, shop.merchant.id).status == MerchantStatus.approved
    approve = send(client, f"/portal/backoffice/merchants/{applied.merchant.id}/decision", "POST",
                   data={"decision": "approve"})
    assert approve.status_code == 302
    db.session.expire_all()
    assert db.session.get(Merchant, applied.merchant.id).status == MerchantStatus.approved


def test_without_a_second_factor_the_password_is_asked_again(app, client, clock, create_shop):
    """An account without a second factor (an owner; an operator where tests allow it) types its password: a wrong
    one is refused, the right one lets the form through; the check page for a page opened goes back to it."""
    shop = create_shop()
    operator = make_user()
    sign_in(client, operator, None, clock)
    clock.advance(minutes=11)
    asked = send(client, "/backoffice/fees", "POST", data={"merchant_id": str(shop.merchant.id), **FEES})
    html = asked.get_data(as_text=True)
    assert 'name="step_up-password"' in html and 'name="step_up-code"' not in html
    carried = hidden_fields(html)
    assert send(client, "/backoffice/fees", "POST", data={**carried, "step_up-password": "nope"}).status_code == 422
    assert send(client, "/backoffice/fees", "POST",
                data={**carried, "step_up-password": PASSWORD}).status_code == 302
    owner = app.test_client()
    sign_in(owner, shop.owner, None, clock)
    clock.advance(minutes=11)
    page = send(owner, "/account/confirm?next=/portal/statements")
    assert page.status_code == 200 and 'name="step_up-password"' in page.get_data(as_text=True)
    wrong = send(owner, "/account/confirm?next=/portal/statements", "POST", data={"step_up-password": "nope"})
    assert wrong.status_code == 422
    back = send(owner, "/account/confirm?next=/portal/statements", "POST", data={"step_up-password": PASSWORD})
    assert back.status_code == 302 and back.headers["Location"] == "/portal/statements"
    outside = send(owner, "/account/confirm?next=//evil.example/", "POST", data={"step_up-password": PASSWORD})
    assert outside.headers["Location"] == "/account"
    assert db.session.get(User, shop.owner.id).role == Role.merchant_owner
