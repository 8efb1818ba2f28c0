"""Statement mail through a real SMTP server: an issued statement (period, amount in yuan, due date, the
provider's payment link and the portal's page), a failed payment (pay again through the link), an overdue statement
(once, by the daily job); nothing for an invoicing attempt rolled back; the overdue job on rq."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from rq.cron import CronScheduler
from sqlalchemy import event, func, select, text

from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work
from metropoints.core.jobs import enqueue, redis_connection
from metropoints.core.models import OutgoingMail
from metropoints.core.templating import local_datetime
from metropoints.core.timeutil import utcnow
from metropoints.settlement import operations
from metropoints.settlement.invoicing import invoice_statement_job
from metropoints.settlement.jobs import mail_overdue_job
from metropoints.settlement.models import ProviderEvent, Statement, StatementStatus
from tests.helpers import work_burst
from tests.settlement.conftest import AFTER_OCTOBER, PERIOD, statements
from tests.settlement.test_invoicing import wait_for


def run_october() -> list[Statement]:
    """October's statements made (and, jobs inline, invoiced), fresh from the database."""
    operations.run_period(PERIOD, now=AFTER_OCTOBER)
    commit_unit_of_work()
    return statements()


def kinds(kind: str) -> list[str]:
    """The recipients of the mails of one kind, oldest first."""
    return list(db.session.scalars(select(OutgoingMail.to_address).where(OutgoingMail.kind == kind)
                                   .order_by(OutgoingMail.id)))


def owed(shop, *, due_in: timedelta, status: StatementStatus = StatementStatus.issued,
         period: date = PERIOD) -> Statement:
    """A statement of 12.34 yuan, issued with a payment link and due `due_in` from now (committed)."""
    now = utcnow()
    statement = Statement(merchant_id=shop.merchant.id, period=period, status=status, currency="cny",
                          fee_per_coupon_fen=200, coupon_count=0, coupon_fees_fen=0, monthly_fee_fen=1234,
                          total_fen=1234, payment_url=f"https://pay.example/{shop.merchant.id}/{period}",
                          issued_at=now - timedelta(days=15), due_at=now + due_in)
    db.session.add(statement)
    commit_unit_of_work()
    return statement


def test_an_issued_statement_is_mailed_with_its_amount_due_date_and_links(app, provider_app, localstripe, smtp_server,
                                                                         create_shop, month_of_coupons):
    """Each merchant's owner gets its issued statement, in the owner's language: the period, the amount in yuan
    with two decimals (from integer fen), the due date, the provider's payment link and the statement's page."""
    english, chinese = create_shop(), create_shop()
    english.owner.locale = "en"
    commit_unit_of_work()
    month_of_coupons(english, 3)
    month_of_coupons(chinese, 1)
    first, second = run_october()
    assert (first.status, first.total_fen, second.total_fen) == (StatementStatus.issued, 600, 200)
    smtp_server.wait(2)
    (mail_en,) = smtp_server.to(english.owner.email)
    assert mail_en["Subject"] == "Your statement for 2026-10: ¥6.00"
    body = mail_en.get_content()
    assert first.payment_url.startswith(localstripe.url) and f"{first.payment_url}\r\n" in body
    assert f"{app.config['PUBLIC_URL']}/portal/statements/{first.id}\r\n" in body
    assert f"Please pay it by {local_datetime(first.due_at)} (Beijing time)." in body and "3 used coupons" in body
    (mail_zh,) = smtp_server.to(chinese.owner.email)
    assert mail_zh["Subject"] == "您的 2026-10 结算单：¥2.00"
    assert f"请在北京时间 {local_datetime(second.due_at)} 前付款" in mail_zh.get_content()
    assert second.payment_url in mail_zh.get_content()


def test_a_declined_payment_is_mailed_once_with_the_link_to_pay_again(provider_app, localstripe, webhook_server,
                                                                      smtp_server, create_shop, month_of_coupons):
    """A card declined on the provider's page sends two signed events (the payment's and the invoice's): the
    statement turns payment_failed and its owner gets one mail saying to pay again, with another card, through the
    payment link; paying then sends no further failure mail."""
    shop = create_shop()
    shop.owner.locale = "en"
    commit_unit_of_work()
    month_of_coupons(shop, 2)
    (statement,) = run_october()
    assert "declined" in localstripe.pay(statement.payment_url, card="4000000000000341")
    wait_for(lambda: statements()[0].status == StatementStatus.payment_failed)
    wait_for(lambda: db.session.scalar(select(func.count(ProviderEvent.id))
                                       .where(ProviderEvent.outcome == "payment_failed")) >= 2)
    assert kinds("statement.payment_failed") == [shop.owner.email]
    (failed,) = [m for m in smtp_server.wait(2) if m["Subject"].startswith("Payment failed")]
    assert failed["Subject"] == "Payment failed: your statement for 2026-10"
    body = failed.get_content()
    assert "¥4.00" in body and "another card" in body and f"{statement.payment_url}\r\n" in body
    assert "paid" in localstripe.pay(statement.payment_url)
    wait_for(lambda: statements()[0].status == StatementStatus.paid)
    assert kinds("statement.payment_failed") == [shop.owner.email]


def test_an_invoicing_attempt_rolled_back_mails_nothing(provider_app, localstripe, fault_proxy, smtp_server,
                                                        create_shop, month_of_coupons):
    """The provider failing after the invoice was made rolls the attempt back, its mail included: the owner hears
    nothing until the retry issues the statement, and then once."""
    shop = create_shop()
    month_of_coupons(shop, 1)
    fault_proxy.faults = [("POST", "/v1/invoices/", "500")]  # finalize fails: the attempt is rolled back
    (statement,) = run_october()
    assert statement.status == StatementStatus.pending and statement.invoice_attempts == 1
    assert kinds("statement.issued") == [] and smtp_server.messages == []
    assert invoice_statement_job(statement.id) == "issued"
    assert invoice_statement_job(statement.id) == "issued"  # a repeat changes nothing, mails nothing
    assert kinds("statement.issued") == [shop.owner.email]
    (message,) = smtp_server.wait(1)
    assert "2026-10" in message["Subject"] and "¥2.00" in message["Subject"]


def test_each_overdue_statement_is_mailed_once(smtp_server, create_shop):
    """The daily job mails the owner of each statement owed and past due (issued or with a failed payment), once:
    run again, it mails nothing; statements not yet due, or paid, are left alone."""
    late, failed, early, paid = create_shop(), create_shop(), create_shop(), create_shop()
    late.owner.locale = "en"
    commit_unit_of_work()
    overdue = owed(late, due_in=-timedelta(hours=2))
    owed(failed, due_in=-timedelta(days=3), status=StatementStatus.payment_failed)
    owed(early, due_in=timedelta(days=1))
    owed(paid, due_in=-timedelta(days=3), status=StatementStatus.paid)
    assert mail_overdue_job() == 2
    assert mail_overdue_job() == 0
    assert sorted(kinds("statement.overdue")) == sorted([late.owner.email, failed.owner.email])
    smtp_server.wait(2)
    (english,) = smtp_server.to(late.owner.email)
    assert english["Subject"] == "Overdue: your statement for 2026-10"
    body = english.get_content()
    assert f"¥12.34, was due by {local_datetime(overdue.due_at)}" in body and overdue.payment_url in body
    (chinese,) = smtp_server.to(failed.owner.email)
    assert chinese["Subject"] == "已逾期：2026-10 结算单" and "尚未付款" in chinese.get_content()
    db.session.expire_all()
    assert db.session.get(Statement, overdue.id).overdue_notified_at is not None


def test_the_overdue_read_goes_through_the_partial_index(app, create_shop):
    """The job reads owed statements not yet mailed through their partial index on the due date, so its read is
    bounded by what is owed now, not by the history of paid statements (the plan PostgreSQL makes for the very
    query the job sends, sequential scans off as on a large table)."""
    shop = create_shop()
    owed(shop, due_in=-timedelta(days=1))
    sent: list = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().startswith("SELECT") and "overdue_notified_at IS NULL" in statement:
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert len(operations.mail_overdue()) == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    rollback_unit_of_work()
    (statement, parameters), = sent
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = db.session.connection().exec_driver_sql("EXPLAIN " + statement, parameters).scalars().all()
    rollback_unit_of_work()
    assert any("ix_statements_overdue_unnotified" in line for line in plan), plan


def test_the_overdue_job_runs_on_rq_in_batches(redis_app, smtp_server, create_shop, monkeypatch):
    """Queued on the scheduled queue, the job mails through the mail jobs on rq; a full batch queues the job again
    for the rest, so every overdue statement is mailed, each once."""
    monkeypatch.setattr(operations, "OVERDUE_BATCH", 1)
    shops = [create_shop() for _ in range(3)]
    for shop in shops:
        owed(shop, due_in=-timedelta(days=1))
    enqueue(mail_overdue_job, queue="scheduled")
    commit_unit_of_work()
    assert smtp_server.messages == []
    work_burst("scheduled", "default")
    assert sorted(m["To"] for m in smtp_server.wait(3)) == sorted(s.owner.email for s in shops)
    assert len(smtp_server.messages) == 3


def test_cron_mails_overdue_statements_every_morning(redis_app):
    """The overdue job is scheduled daily at 09:00 Asia/Shanghai on the scheduled queue."""
    scheduler = CronScheduler(connection=redis_connection())
    scheduler.load_config_from_file(str(Path(__file__).parents[2] / "metropoints" / "cron_config.py"))
    jobs = {job.func: job for job in scheduler.get_jobs()}
    assert jobs[mail_overdue_job].cron == "0 1 * * *" and jobs[mail_overdue_job].queue_name.endswith("-scheduled")
