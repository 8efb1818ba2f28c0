"""Settlement pages: the owner's statements (lines, totals, status, CSV, printable, the payment link), only their
own; the back office's fee plans (form errors, from next month) and receivables (owed, overdue, paid, retry)."""

from __future__ import annotations

import csv
import io
import threading
from datetime import timedelta

import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import Role
from metropoints.core.operations import create_user
from metropoints.marketplace.models import MerchantStatus
from metropoints.settlement import operations, periods
from metropoints.settlement.models import FeePlan, Statement, StatementStatus
from tests.conftest import SHOP_PASSWORD
from tests.marketplace.conftest import login, page
from tests.settlement.conftest import AFTER_OCTOBER, PERIOD


def october(shop_factory, month_of_coupons, used: int = 3):
    shop = shop_factory()
    month_of_coupons(shop, used, campaigns=2)
    operations.run_period(PERIOD, now=AFTER_OCTOBER)
    commit_unit_of_work()
    statement = db.session.scalar(select(Statement).where(Statement.merchant_id == shop.merchant.id))
    return shop, statement


def test_owner_sees_statements_lines_csv_and_printable(app, client, create_shop, month_of_coupons):
    shop, statement = october(create_shop, month_of_coupons)
    statement.status, statement.payment_url = StatementStatus.issued, "https://pay.example/in_1"
    statement.issued_at, statement.due_at = AFTER_OCTOBER, AFTER_OCTOBER + timedelta(days=15)
    commit_unit_of_work()
    login(client, shop.owner.email, SHOP_PASSWORD)
    listing = page(client, "/portal/statements")
    text = listing.get_data(as_text=True)
    assert listing.status_code == 200 and "2026-10" in text and "¥6.00" in text and "Overdue" in text
    assert 'href="https://pay.example/in_1"' in text
    detail = page(client, f"/portal/statements/{statement.id}").get_data(as_text=True)
    assert detail.count('data-coupon-id="') == 3 and "¥2.00" in detail and "This statement is overdue" in detail
    assert "Pay ¥6.00 at the payment provider" in detail
    download = page(client, f"/portal/statements/{statement.id}.csv")
    assert download.status_code == 200 and download.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["statement_id", "period", "coupon_id", "campaign", "store", "used_at", "fee_fen"]
    assert len(rows) == 4 and {row[6] for row in rows[1:]} == {"200"} and rows[1][1] == "2026-10"
    printable = page(client, f"/portal/statements/{statement.id}/print").get_data(as_text=True)
    assert "@media print" in printable and printable.count('data-coupon-id="') == 3


def test_statement_csv_streams_whole_from_a_real_server(app, create_shop, month_of_coupons):
    """Served by a real WSGI server (the rows stream after the request's commit), the owner's CSV download carries
    its header and every line, not the header alone."""
    shop, statement = october(create_shop, month_of_coupons)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser, base = requests.Session(), f"http://127.0.0.1:{server.port}"
        browser.post(f"{base}/login", data={"email": shop.owner.email, "password": SHOP_PASSWORD}, timeout=10)
        download = browser.get(f"{base}/portal/statements/{statement.id}.csv", timeout=10)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert download.status_code == 200 and len(rows) == 4 and rows[0][0] == "statement_id"
    assert {row[0] for row in rows[1:]} == {str(statement.id)}


def test_statements_are_the_owners_own(app, client, create_shop, month_of_coupons):
    """Another merchant's owner and cashiers get 404 / 403; operators see them in the back office."""
    _, statement = october(create_shop, month_of_coupons)
    other = create_shop()
    login(client, other.owner.email, SHOP_PASSWORD)
    for path in (f"/portal/statements/{statement.id}", f"/portal/statements/{statement.id}.csv",
                 f"/portal/statements/{statement.id}/print"):
        assert page(client, path).status_code == 404
    assert "2026-10" not in page(client, "/portal/statements").get_data(as_text=True)
    login(client, other.cashier.email, SHOP_PASSWORD)
    assert page(client, "/portal/statements").status_code == 403


def test_a_suspended_merchants_owner_still_sees_its_statements(app, client, create_shop, month_of_coupons):
    """Suspension locks the portal, but not the bills: the owner can still read and pay them."""
    shop, statement = october(create_shop, month_of_coupons)
    shop.merchant.status = MerchantStatus.suspended
    commit_unit_of_work()
    login(client, shop.owner.email, SHOP_PASSWORD)
    assert page(client, f"/portal/statements/{statement.id}").status_code == 200
    assert page(client, "/portal/stores").status_code == 403


def operator(client) -> None:
    user = create_user(email="ops@metro.example", password=SHOP_PASSWORD, role=Role.operator)
    commit_unit_of_work()
    login(client, user.email, SHOP_PASSWORD)


def test_operator_sets_fees_from_next_month_with_form_errors(app, client, create_shop):
    """Fees typed in yuan apply from next month; bad ones are refused on the form (422) and set nothing; an unknown
    merchant is a 404."""
    shop = create_shop()
    operator(client)
    assert "default: ¥2.00 per coupon" in page(client, "/backoffice/fees").get_data(as_text=True)
    bad = page(client, "/backoffice/fees", "POST", data={"merchant_id": shop.merchant.id,
                                                           "fee_per_coupon": "-3", "monthly_fee": "x"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert 'data-field="fee_per_coupon"' in text and 'data-field="monthly_fee"' in text
    assert db.session.scalar(select(FeePlan)) is None
    good = page(client, "/backoffice/fees", "POST", data={"merchant_id": shop.merchant.id,
                                                            "fee_per_coupon": "3", "monthly_fee": "50.00"})
    assert good.status_code == 302
    plan = db.session.scalar(select(FeePlan))
    assert (plan.fee_per_coupon_fen, plan.monthly_fee_fen) == (300, 5000)
    assert plan.effective_from == periods.next_period(periods.period_of(plan.set_at))
    assert "¥3.00 per coupon, ¥50.00 monthly, from" in page(client, "/backoffice/fees").get_data(as_text=True)
    unknown = page(client, "/backoffice/fees", "POST", data={"merchant_id": "999999", "fee_per_coupon": "1",
                                                               "monthly_fee": "0"})
    assert unknown.status_code == 404
    huge = page(client, "/backoffice/fees", "POST", data={"merchant_id": str(2**40), "fee_per_coupon": "1",
                                                            "monthly_fee": "0"})
    assert huge.status_code == 404
    assert page(client, f"/backoffice/statements/{2**40}").status_code == 404
    assert page(client, f"/backoffice/statements/{2**40}/retry", "POST").status_code == 404


def test_receivables_owed_overdue_paid_and_retry(app, client, create_shop, month_of_coupons):
    _, owed = october(create_shop, month_of_coupons, used=2)
    _, late = october(create_shop, month_of_coupons, used=1)
    _, paid = october(create_shop, month_of_coupons, used=4)
    _, stuck = october(create_shop, month_of_coupons, used=5)
    now = operations.utcnow()
    owed.status, owed.due_at = StatementStatus.issued, now + timedelta(days=3)
    late.status, late.due_at = StatementStatus.issued, now - timedelta(days=1)
    paid.status = StatementStatus.paid
    commit_unit_of_work()
    operator(client)
    text = page(client, "/backoffice/receivables").get_data(as_text=True)
    assert f'data-statement-id="{owed.id}"' in text and f'data-statement-id="{late.id}"' in text
    assert f'data-statement-id="{paid.id}"' not in text
    totals = page(client, "/backoffice/receivables?state=overdue").get_data(as_text=True)
    assert f'data-statement-id="{late.id}"' in totals and f'data-statement-id="{owed.id}"' not in totals
    assert "¥4.00" in totals and "¥2.00" in totals and "¥8.00" in totals
    attention = page(client, "/backoffice/receivables?state=attention").get_data(as_text=True)
    assert f'data-statement-id="{stuck.id}"' in attention and "ConnectionError" in attention
    retried = page(client, f"/backoffice/statements/{stuck.id}/retry", "POST")
    assert retried.status_code == 302
    db.session.expire_all()
    assert db.session.get(Statement, stuck.id).invoice_attempts == 2  # sent again (and refused: no provider here)
    assert page(client, f"/backoffice/statements/{paid.id}/retry", "POST").status_code == 409
    detail = page(client, f"/backoffice/statements/{stuck.id}").get_data(as_text=True)
    assert "Invoicing attempts" in detail and "ConnectionError" in detail and "No events from the provider" in detail


def test_receivables_csv_lists_the_states_statements(app, client, create_shop, month_of_coupons):
    """The receivables of a state download as a CSV with a row per statement the page lists: merchant, month,
    status, amount in fen, due date and whether it is overdue."""
    _, late = october(create_shop, month_of_coupons, used=3)
    late.status, late.due_at = StatementStatus.issued, operations.utcnow() - timedelta(days=1)
    commit_unit_of_work()
    operator(client)
    download = page(client, "/backoffice/receivables.csv?state=overdue")
    assert download.status_code == 200 and download.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:5] == ["statement_id", "merchant", "period", "status", "total_fen"]
    assert rows[1][0] == str(late.id) and rows[1][2:5] == ["2026-10", "issued", "600"] and rows[1][9] == "yes"
    assert len(page(client, "/backoffice/receivables.csv?state=paid").get_data(as_text=True).splitlines()) == 1
