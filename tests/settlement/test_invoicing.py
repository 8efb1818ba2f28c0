"""Statements invoiced at the real localstripe server, paid through its hosted page, its signed webhooks applied
once; forged, stale and replayed events; the provider stopped or failing mid-run, with rq's retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.jobs import enqueue
from metropoints.settlement import invoicing, operations
from metropoints.settlement.invoicing import invoice_statement_job
from metropoints.settlement.jobs import invoice_pending_job
from metropoints.settlement.models import ProviderEvent, Statement, StatementStatus
from metropoints.settlement.provider import PaymentProvider
from tests.helpers import work_burst
from tests.settlement.conftest import AFTER_OCTOBER, PERIOD, WEBHOOK_SECRET, LocalStripe, statements


def wait_for(condition, seconds: float = 15.0) -> None:
    """Poll until `condition()` holds: localstripe sends its webhooks a second after the event."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def signed(payload: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> dict[str, str]:
    at = int(time.time()) if at is None else at
    signature = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={at},v1={signature}", "Content-Type": "application/json"}


def run_october() -> list[Statement]:
    operations.run_period(PERIOD, now=AFTER_OCTOBER)
    commit_unit_of_work()
    return statements()


def test_a_full_month_invoiced_paid_and_failed_through_signed_webhooks(provider_app, localstripe, webhook_server,
                                                                      create_shop, month_of_coupons):
    """Two merchants' statements become finalized invoices (integer fen, CNY, their items adding up); one merchant
    pays on the hosted page and its statement turns paid by the signed webhook; the other's card is declined and
    its statement shows payment_failed."""
    paying, declined = create_shop(), create_shop()
    month_of_coupons(paying, 3, campaigns=2)
    month_of_coupons(declined, 1)
    first, second = run_october()
    assert [s.status for s in (first, second)] == [StatementStatus.issued, StatementStatus.issued]
    invoices = {i["id"]: i for i in localstripe.invoices()}
    assert set(invoices) == {first.provider_invoice_id, second.provider_invoice_id}
    invoice = invoices[first.provider_invoice_id]
    assert (invoice["status"], invoice["currency"], invoice["total"], invoice["metadata"]["statement_id"]) == \
        ("open", "cny", first.total_fen, str(first.id))
    assert sorted(line["amount"] for line in invoice["lines"]["data"]) == [200, 400]
    assert all(type(line["amount"]) is int for line in invoice["lines"]["data"])
    assert first.payment_url.startswith(localstripe.url) and first.due_at > first.issued_at

    assert "paid" in localstripe.pay(first.payment_url)
    assert "declined" in localstripe.pay(second.payment_url, card="4000000000000341")
    wait_for(lambda: [s.status for s in statements()] == [StatementStatus.paid, StatementStatus.payment_failed])
    wait_for(lambda: db.session.scalar(select(func.count(ProviderEvent.id))) >= 8)
    outcomes = dict(db.session.execute(select(ProviderEvent.type, ProviderEvent.outcome)
                                       .where(ProviderEvent.statement_id == first.id)).tuples().all())
    assert outcomes["invoice.payment_succeeded"] in ("paid", "unchanged")
    assert statements()[0].paid_at is not None
    # The merchant pays the failed one again with a good card.
    assert "paid" in localstripe.pay(second.payment_url)
    wait_for(lambda: statements()[1].status == StatementStatus.paid)


def test_forged_stale_and_replayed_events_change_nothing(provider_app, localstripe, client, create_shop,
                                                         month_of_coupons):
    shop = create_shop()
    month_of_coupons(shop, 2)
    (statement,) = run_october()
    event = {"id": "evt_test_paid_1", "type": "invoice.paid", "created": int(time.time()),
             "data": {"object": {"id": statement.provider_invoice_id, "object": "invoice",
                                 "metadata": {"statement_id": str(statement.id)}}}}
    payload = json.dumps(event).encode()
    url = "/api/v1/webhooks/payments"

    forged = client.post(url, data=payload, headers=signed(payload, secret="whsec_guessed"))
    assert forged.status_code == 400 and forged.get_json()["error"]["code"] == "bad_signature"
    altered = client.post(url, data=payload.replace(b"invoice.paid", b"invoice.payment_failed"),
                          headers=signed(payload))
    assert altered.status_code == 400 and altered.get_json()["error"]["code"] == "bad_signature"
    for headers in ({}, {"Stripe-Signature": "t=abc,v1=00"}, {"Stripe-Signature": "v1=00"}):
        missing = client.post(url, data=payload, headers=headers)
        assert missing.status_code == 400 and missing.get_json()["error"]["code"] == "bad_signature"
    stale = client.post(url, data=payload, headers=signed(payload, at=int(time.time()) - 301))
    assert stale.status_code == 400 and stale.get_json()["error"]["code"] == "stale_timestamp"
    assert statements()[0].status == StatementStatus.issued
    assert db.session.scalar(select(func.count(ProviderEvent.id))) == 0

    applied = client.post(url, data=payload, headers=signed(payload))
    assert applied.status_code == 200 and applied.get_json() == {"event_id": "evt_test_paid_1", "outcome": "paid"}
    paid_at = statements()[0].paid_at
    failed = {**event, "id": "evt_test_failed_1", "type": "invoice.payment_failed"}
    failed_payload = json.dumps(failed).encode()
    late = client.post(url, data=failed_payload, headers=signed(failed_payload))
    assert late.get_json()["outcome"] == "unchanged"  # paid is final
    replay = client.post(url, data=payload, headers=signed(payload))
    assert replay.status_code == 200 and replay.get_json()["outcome"] == "duplicate"
    assert statements()[0].status == StatementStatus.paid and statements()[0].paid_at == paid_at
    assert db.session.scalar(select(func.count(ProviderEvent.id))) == 2

    for junk in (b'{"id": 5}', b'[1]', b'{"id": "evt_j", "type": "invoice.paid", "data": [1]}', b"\xff"):
        reply = client.post(url, data=junk, headers=signed(junk))
        assert reply.status_code == 400 and reply.get_json()["error"]["code"] == "malformed_json"
    odd = json.dumps({"id": "evt_odd", "type": "invoice.paid",
                      "data": {"object": {"id": ["x"], "metadata": "nope"}}, "created": "soon"}).encode()
    assert client.post(url, data=odd, headers=signed(odd)).get_json()["outcome"] == "ignored"
    other = json.dumps({"id": "evt_other", "type": "customer.created", "created": 1,
                        "data": {"object": {"id": "cus_x"}}}).encode()
    assert client.post(url, data=other, headers=signed(other)).get_json()["outcome"] == "ignored"


def test_an_event_before_its_statement_recorded_the_invoice_is_sent_again_later(provider_app, client, create_shop,
                                                                              month_of_coupons):
    """An event about one of our invoices that its statement does not know yet gets a 409, so the provider
    redelivers it, and nothing is recorded."""
    shop = create_shop()
    month_of_coupons(shop, 1)
    (statement,) = run_october()
    event = json.dumps({"id": "evt_early", "type": "invoice.paid", "created": int(time.time()),
                        "data": {"object": {"id": "in_not_recorded_yet",
                                            "metadata": {"statement_id": str(statement.id)}}}}).encode()
    early = client.post("/api/v1/webhooks/payments", data=event, headers=signed(event))
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "statement_not_ready"
    assert db.session.scalar(select(func.count(ProviderEvent.id))) == 0


def test_provider_stopped_then_back_invoices_each_statement_once(app, redis_app, create_shop, month_of_coupons):
    """With the provider stopped, rq retries each statement's job until its retries run out; every failure is
    recorded and the statements stay pending. When the provider is back, the sweep's jobs issue exactly one
    invoice per statement; `flask settlement invoice` then finds nothing left to send."""
    provider = LocalStripe()
    app.config.update(PAYMENT_API_BASE=provider.url, PAYMENT_API_KEY="sk_test_settlement",
                      SETTLEMENT_RETRY_BACKOFF=(0, 0, 0))
    for shop in (create_shop(), create_shop()):
        month_of_coupons(shop, 2)
    run_october()
    work_burst("default")
    first, second = statements()
    assert {s.status for s in (first, second)} == {StatementStatus.pending}
    assert first.invoice_attempts == second.invoice_attempts == 4  # the first try and rq's three retries
    assert "ConnectionError" in first.last_error
    provider.start()
    try:
        for statement in (first, second):
            statement.created_at -= timedelta(minutes=31)
        enqueue(invoice_pending_job, queue="scheduled")
        commit_unit_of_work()
        work_burst("scheduled", "default")
        invoices = provider.invoices()
        assert sorted(i["metadata"]["statement_id"] for i in invoices) == sorted([str(first.id), str(second.id)])
        assert {s.status for s in statements()} == {StatementStatus.issued}
        assert all(s.last_error == "" and s.invoice_attempts == 5 for s in statements())
        result = app.test_cli_runner().invoke(args=["settlement", "invoice"])
        assert result.exit_code == 0 and result.output.endswith("0 statements sent\n"), result.output
        assert invoice_statement_job(first.id) == "issued" and len(provider.invoices()) == 2
    finally:
        provider.stop()


def test_provider_failing_mid_run_is_retried_by_rq_into_one_invoice(provider_app, redis_app, localstripe,
                                                                  fault_proxy, create_shop, month_of_coupons):
    """The provider answers 500 after creating the invoice (the reply is lost), then 500 on finalize, drops a
    connection, answers 500 after making an invoice item, and stalls past the client's timeout after making an
    invoice: rq retries the job and every statement ends with exactly one finalized invoice."""
    shops = [create_shop(), create_shop()]
    for shop in shops:
        month_of_coupons(shop, 2)
    fault_proxy.faults = [("POST", "/v1/invoices", "forward_then_500"), ("POST", "/v1/invoices/", "500"),
                          ("GET", "/v1/customers", "refuse"), ("POST", "/v1/invoiceitems", "forward_then_500"),
                          ("POST", "/v1/invoices", "forward_then_stall")]
    provider_app.config["PAYMENT_TIMEOUT_SECONDS"] = 1
    run_october()
    assert {s.status for s in statements()} == {StatementStatus.pending}  # queued, not yet run
    work_burst("default")
    done = statements()
    assert {s.status for s in done} == {StatementStatus.issued}, [(s.status, s.last_error) for s in done]
    assert fault_proxy.faults == []  # every fault was met
    assert sum(s.invoice_attempts for s in done) >= 2 + 5
    invoices = localstripe.invoices()
    assert sorted(i["metadata"]["statement_id"] for i in invoices) == sorted(str(s.id) for s in done)
    assert {(i["status"], i["total"]) for i in invoices} == {("open", 400)}


def test_every_create_carries_a_stable_idempotency_key(provider_app, redis_app, localstripe, fault_proxy,
                                                      create_shop, month_of_coupons):
    """Every POST to the provider carries an Idempotency-Key made from our ids, and a retried step sends the same
    key again (so a provider that honours keys returns the first result)."""
    shop = create_shop()
    month_of_coupons(shop, 2, campaigns=2)
    fault_proxy.faults = [("POST", "/v1/invoiceitems", "forward_then_500"), ("POST", "/v1/invoices/", "500")]
    (statement,) = run_october()
    work_burst("default")
    assert statements()[0].status == StatementStatus.issued
    posts = [(path, key) for method, path, key in fault_proxy.keys if method == "POST"]
    assert posts and all(key for _, key in posts)
    sid = statement.id
    keys = [key for _, key in posts]
    assert set(keys) == {f"merchant-{shop.merchant.id}-customer", f"statement-{sid}-invoice",
                         f"statement-{sid}-finalize"} | {f"statement-{sid}-item-campaign-{c}" for c in
                                                         {line["metadata"]["line"].split("-")[1] for line in
                                                          localstripe.invoices()[0]["lines"]["data"]}}
    assert keys.count(f"statement-{sid}-finalize") == 2  # the 500 on finalize, then the retry with the same key
    assert [i["status"] for i in localstripe.invoices()] == ["open"]


def test_a_wrong_total_at_the_provider_is_never_finalized(provider_app, localstripe, create_shop, month_of_coupons):
    """A stray pending item at the merchant's customer would make the invoice's total differ from the statement:
    the invoice stays a draft and the statement is marked for an operator instead."""
    shop = create_shop()
    month_of_coupons(shop, 1)
    customer = localstripe.post("/v1/customers", name="Shop", **{"metadata[merchant_id]": str(shop.merchant.id)})
    localstripe.post("/v1/invoiceitems", customer=customer["id"], amount=999, currency="cny", description="stray")
    (statement,) = run_october()
    assert statement.status == StatementStatus.invoice_failed and "totals 1199" in statement.last_error
    assert [i["status"] for i in localstripe.invoices()] == ["draft"]
    # An operator clears it at the provider and sends it again: it is found, checked and still refused (draft).
    operations.retry_invoicing(statement.id, actor=None, actor_label="test")
    commit_unit_of_work()
    assert statements()[0].status == StatementStatus.invoice_failed


def test_an_issued_statement_is_never_invoiced_twice(provider_app, localstripe, create_shop, month_of_coupons):
    shop = create_shop()
    month_of_coupons(shop, 1)
    (statement,) = run_october()
    assert invoice_statement_job(statement.id) == "issued"
    assert invoicing.invoice_statement(statement.id, PaymentProvider.from_config()) == "issued"
    assert len(localstripe.invoices()) == 1
    with pytest.raises(operations.Conflict) as refused:
        operations.retry_invoicing(statement.id, actor=None)
    assert refused.value.fields["status"] == "issued"
