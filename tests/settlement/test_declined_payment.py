"""A declined payment on the statement: the provider's reason read from its events and kept (whichever of the two
events of one decline arrives first), shown to the owner with when it failed and what to do, and marked on the
back office's receivables."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import func, select

from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work
from metropoints.core.models import OutgoingMail
from metropoints.core.templating import local_datetime
from metropoints.core.timeutil import utcnow
from metropoints.settlement import operations
from metropoints.settlement.declines import Decline, decline_of, read_decline
from metropoints.settlement.mail import mail_statement
from metropoints.settlement.models import ProviderEvent, StatementStatus
from tests.conftest import SHOP_PASSWORD
from tests.marketplace.conftest import login, page
from tests.settlement.test_invoicing import run_october, signed, wait_for
from tests.settlement.test_pages import october, operator


def test_the_reason_is_read_from_the_events_object_whatever_its_shape():
    """The decline code (decline_code before code) and message come from a payment intent's last_payment_error, an
    invoice's expanded payment intent or a charge's failure fields; values that are not strings or codes are
    dropped; kept as `[code] message` and read back the same."""
    intent = {"last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds",
                                     "message": "Your card has insufficient funds."}}
    assert decline_of(intent) == Decline("insufficient_funds", "Your card has insufficient funds.")
    assert decline_of({"payment_intent": intent}) == decline_of(intent)
    assert decline_of({"failure_code": "expired_card", "failure_message": "Your card has expired."}) == \
        Decline("expired_card", "Your card has expired.")
    assert decline_of({"payment_intent": "pi_1"}) is None and decline_of({}) is None
    assert decline_of({"last_payment_error": {"code": ["x"], "message": 5}}) is None
    assert decline_of({"last_payment_error": {"code": "Bad Code!", "message": " m "}}) == Decline("", "m")
    assert len(decline_of({"failure_message": "x" * 5000}).message) == 500
    for decline in (Decline("card_declined", "Your card was declined."), Decline("", "Declined [x]"),
                    Decline("expired_card", "")):
        assert read_decline(decline.stored()) == decline
    assert read_decline("") is None
    assert read_decline("POST /v1/invoices: ConnectionError") == Decline("", "POST /v1/invoices: ConnectionError")


def test_a_card_declined_at_the_provider_shows_when_why_and_what_to_do(provider_app, localstripe, webhook_server,
                                                                      client, create_shop, month_of_coupons):
    """A card declined on localstripe's hosted page: the statement keeps the failure's time and the provider's
    code and message (the invoice's event, which names no reason, does not wipe it); the owner's page says when
    it failed, why, and what to do — pay again through the link, use another card, contact the metro team with
    the invoice number — and the back office's receivables mark it as declined."""
    shop = create_shop()
    month_of_coupons(shop, 2)
    (statement,) = run_october()
    assert "declined" in localstripe.pay(statement.payment_url, card="4000000000000341")
    wait_for(lambda: db.session.scalar(select(func.count(ProviderEvent.id))
                                       .where(ProviderEvent.outcome == "payment_failed")) >= 2)
    db.session.expire_all()
    assert statement.status == StatementStatus.payment_failed and statement.failed_at is not None
    assert statement.last_error == "[card_declined] Your card was declined."

    login(client, shop.owner.email, SHOP_PASSWORD)
    text = page(client, f"/portal/statements/{statement.id}").get_data(as_text=True)
    assert 'data-field="payment_failed"' in text and "The payment was declined" in text
    assert f"failed on {local_datetime(statement.failed_at)} (Beijing time)" in text
    assert "Reason: The bank that issued the card declined the payment" in text and "card_declined" in text
    assert "The payment provider says: Your card was declined." in text
    assert "Pay again through the payment link" in text and f'href="{statement.payment_url}"' in text
    assert "another card or another payment method" in text
    assert "contact the metro team at" in text and "mailto:billing@metropoints.example" in text
    assert f"give the invoice number {statement.invoice_number}." in text
    zh = page(client, f"/portal/statements/{statement.id}", headers={"Accept-Language": "zh"})
    assert zh.status_code == 200 and 'data-field="decline_reason"' in zh.get_data(as_text=True)
    assert "Your card was declined." not in zh.get_data(as_text=True)  # the provider's English words: en only
    assert "Payment failed" in page(client, "/portal/statements").get_data(as_text=True)

    operator(client)
    receivables = page(client, "/backoffice/receivables?state=declined").get_data(as_text=True)
    assert f'data-statement-id="{statement.id}" class="payment-failed"' in receivables
    assert f"Payment declined on {local_datetime(statement.failed_at)}: The bank that issued" in receivables
    assert "Payment declined" in page(client, "/backoffice/receivables").get_data(as_text=True)
    backoffice = page(client, f"/backoffice/statements/{statement.id}").get_data(as_text=True)
    assert "The payment was declined" in backoffice and "What to do" not in backoffice  # advice is the owner's

    assert "paid" in localstripe.pay(statement.payment_url)
    wait_for(lambda: (db.session.expire_all(), statement.status)[1] == StatementStatus.paid)
    assert statement.last_error == ""
    login(client, shop.owner.email, SHOP_PASSWORD)
    assert 'data-field="payment_failed"' not in page(client, f"/portal/statements/{statement.id}").get_data(
        as_text=True)


def post_event(client, event_id: str, event_type: str, obj: dict):
    """Deliver one signed event to the webhook endpoint; its reply's JSON."""
    payload = json.dumps({"id": event_id, "type": event_type, "created": int(time.time()),
                          "data": {"object": obj}}).encode()
    return client.post("/api/v1/webhooks/payments", data=payload, headers=signed(payload)).get_json()


def test_the_reason_survives_either_order_of_the_two_events(provider_app, localstripe, client, create_shop,
                                                            month_of_coupons):
    """One decline brings the payment intent's event (with the reason) and the invoice's (without), in either
    order: the statement ends with the reason either way. A later failure with no reason of its own, outside the
    pairing window, does not show the old reason."""
    first, second = create_shop(), create_shop()
    month_of_coupons(first, 1)
    month_of_coupons(second, 1)
    a, b = run_october()
    reason = {"last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds",
                                     "message": "Your card has insufficient funds."}}
    assert post_event(client, "evt_a1", "invoice.payment_failed",
                      {"id": a.provider_invoice_id, "object": "invoice"})["outcome"] == "payment_failed"
    assert post_event(client, "evt_a2", "payment_intent.payment_failed",
                      {"id": "pi_a", "invoice": a.provider_invoice_id, **reason})["outcome"] == "payment_failed"
    assert post_event(client, "evt_b1", "payment_intent.payment_failed",
                      {"id": "pi_b", "invoice": b.provider_invoice_id, **reason})["outcome"] == "payment_failed"
    assert post_event(client, "evt_b2", "invoice.payment_failed",
                      {"id": b.provider_invoice_id, "object": "invoice"})["outcome"] == "payment_failed"
    db.session.expire_all()
    assert a.last_error == b.last_error == "[insufficient_funds] Your card has insufficient funds."

    b.failed_at = utcnow() - operations.PAIRED_FAILURE_WINDOW - timedelta(minutes=1)
    commit_unit_of_work()
    post_event(client, "evt_b3", "invoice.payment_failed", {"id": b.provider_invoice_id, "object": "invoice"})
    db.session.expire_all()
    assert b.status == StatementStatus.payment_failed and b.last_error == ""
    login(client, second.owner.email, SHOP_PASSWORD)
    text = page(client, f"/portal/statements/{b.id}").get_data(as_text=True)
    assert "The payment provider gave no reason." in text and "insufficient funds" not in text
    login(client, first.owner.email, SHOP_PASSWORD)
    text = page(client, f"/portal/statements/{a.id}").get_data(as_text=True)
    assert "Reason: The card does not have enough funds or credit left." in text and "insufficient_funds" in text


def test_the_failure_mail_gives_the_reason_in_the_owners_language(app, create_shop, month_of_coupons):
    """The mail about a declined payment says why in the owner's language (the code's meaning, and the code), not
    the provider's raw `[code] message`, and whom to contact with the invoice number; without a kept reason it
    gives none."""
    shop, statement = october(create_shop, month_of_coupons)
    statement.status, statement.failed_at = StatementStatus.payment_failed, utcnow()
    statement.last_error = "[expired_card] Your card has expired."
    shop.owner.locale = "en"
    db.session.flush()
    mail_statement(statement, kind="statement.payment_failed")
    body = db.session.scalars(select(OutgoingMail.body).order_by(OutgoingMail.id.desc())).first()
    assert "Reason: The card has expired. (expired_card)" in body and "[expired_card]" not in body
    assert "another card" in body
    assert f"contact the metro team at billing@metropoints.example and give the invoice number {statement.id}." in body
    statement.last_error = ""
    mail_statement(statement, kind="statement.payment_failed")
    body = db.session.scalars(select(OutgoingMail.body).order_by(OutgoingMail.id.desc())).first()
    assert "Reason:" not in body and "another card" in body
    rollback_unit_of_work()
