"""Marketplace mail through a real SMTP server: an application received, approved (with the sign-in link) or
rejected (with the reason), in the applicant's language; a cashier's invitation link, in the inviting owner's
language; nothing for a decision rolled back; the mail job on rq."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work
from metropoints.core.jobs import get_queue
from metropoints.core.models import MailStatus, OutgoingMail, User
from metropoints.marketplace import operations
from metropoints.marketplace.models import Category, Merchant, MerchantStatus
from tests.helpers import work_burst
from tests.marketplace.conftest import PASSWORD, licence, login, page


def application(n: int, **overrides) -> dict:
    """A valid application form, distinct for each n."""
    data = {"name": f"Green Field Café {n}", "category": "dining", "contact_name": "李娜",
            "contact_phone": "13912345678", "licence_no": licence(700 + n), "email": f"owner{n}@greenfield.example",
            "password": PASSWORD}
    data.update(overrides)
    return data


def mails(kind: str) -> list[OutgoingMail]:
    """The mails of one kind the platform queued, oldest first."""
    db.session.expire_all()
    return list(db.session.scalars(select(OutgoingMail).where(OutgoingMail.kind == kind).order_by(OutgoingMail.id)))


def owner_of(merchant: Merchant) -> User:
    """The merchant's owner account."""
    return db.session.get(User, merchant.owner_id)


def test_an_application_is_acknowledged_in_the_language_it_was_made_in(app, smtp_server):
    """Applying on the English page mails the owner in English that the application arrived, and English becomes
    the account's mail language; applying on the Chinese page does the same in Chinese."""
    client = app.test_client()
    assert page(client, "/portal/apply", "POST", data=application(1)).status_code == 302
    assert page(client, "/portal/apply", "POST", data=application(2),
                headers={"Accept-Language": "zh-CN,zh;q=0.9"}).status_code == 302
    smtp_server.wait(2)
    (english,) = smtp_server.to("owner1@greenfield.example")
    assert english["Subject"] == "We have received the application of Green Field Café 1"
    assert "licence number 91210100MA00000701" in english.get_content()
    (chinese,) = smtp_server.to("owner2@greenfield.example")
    assert "入驻申请" in chinese["Subject"] and "Green Field Café 2" in chinese["Subject"]
    assert "地铁运营团队" in chinese.get_content()
    locales = dict(db.session.execute(select(User.email, User.locale)).tuples().all())
    assert locales == {"owner1@greenfield.example": "en", "owner2@greenfield.example": "zh"}
    assert [m.status for m in mails("merchant.application_received")] == [MailStatus.sent, MailStatus.sent]


def test_approval_mails_the_sign_in_link_in_the_owners_language(app, smtp_server, create_operator, create_merchant):
    """An operator's approval mails the owner, in the owner's language (here English), with the link to the
    login page at the platform's public address."""
    merchant = create_merchant("Noodle Bar", status=MerchantStatus.applied)
    owner = owner_of(merchant)
    owner.locale = "en"
    commit_unit_of_work()
    back_office = app.test_client()
    login(back_office, create_operator().email)
    reply = page(back_office, f"/portal/backoffice/merchants/{merchant.id}/decision", "POST",
                 data={"decision": "approve", "reason": ""})
    assert reply.status_code == 302
    smtp_server.wait(2)
    approved = [m for m in smtp_server.to(owner.email) if "approved" in m["Subject"]]
    assert len(approved) == 1 and approved[0]["Subject"] == "Noodle Bar is approved on Metro Carbon Points"
    body = approved[0].get_content()
    assert f"{app.config['PUBLIC_URL']}/login?email={owner.email}" in body
    assert "password you chose" in body
    assert [m.to_address for m in mails("merchant.approved")] == [owner.email]


def test_rejection_mails_the_operators_reason_in_chinese(app, smtp_server, create_operator, create_merchant):
    """A rejection mails the owner the operator's reason; an owner who applied in Chinese reads it in Chinese,
    whatever language the operator's page was in."""
    merchant = create_merchant("面馆", status=MerchantStatus.applied)
    owner = owner_of(merchant)
    back_office = app.test_client()
    login(back_office, create_operator().email)
    reason = "营业执照照片模糊，请重新申请。"
    reply = page(back_office, f"/portal/backoffice/merchants/{merchant.id}/decision", "POST",
                 data={"decision": "reject", "reason": reason})
    assert reply.status_code == 302
    smtp_server.wait(2)
    (rejected,) = [m for m in smtp_server.to(owner.email) if "未通过" in m["Subject"]]
    assert rejected["Subject"] == "“面馆”的入驻申请未通过审核"
    assert reason in rejected.get_content() and "原因如下" in rejected.get_content()


def test_a_refused_or_rolled_back_decision_mails_nothing(app, smtp_server, create_operator, create_merchant):
    """A rejection without a reason is refused and mails nothing; a decision whose unit of work is rolled back
    (the mail was queued in it) leaves no mail queued and sends nothing."""
    merchant = create_merchant("Tea House", status=MerchantStatus.applied)
    smtp_server.wait(1)
    received = len(smtp_server.messages)  # the application's acknowledgement
    operator = create_operator()
    back_office = app.test_client()
    login(back_office, operator.email)
    refused = page(back_office, f"/portal/backoffice/merchants/{merchant.id}/decision", "POST",
                   data={"decision": "reject", "reason": "  "})
    assert refused.status_code == 422
    operations.decide_merchant(actor=operator, merchant=merchant, decision="approve")
    assert len(mails("merchant.approved")) == 1  # queued in the unit of work...
    rollback_unit_of_work()
    assert mails("merchant.approved") == [] and mails("merchant.rejected") == []  # ...and gone with it
    assert len(smtp_server.messages) == received
    assert db.session.get(Merchant, merchant.id).status == MerchantStatus.applied


def test_the_invited_cashier_gets_the_link_in_the_owners_language(app, smtp_server, create_merchant, create_store):
    """Inviting a cashier mails the invitee the invitation link (the one the owner's page shows, at the public
    address), in the inviting owner's language, which becomes the cashier's; a renewed invitation mails the new
    link, in the owner's language of the time."""
    merchant = create_merchant("Green Field")
    owner = owner_of(merchant)
    owner.locale = "en"
    commit_unit_of_work()
    store = create_store(merchant, "Counter Store")
    client = app.test_client()
    login(client, owner.email)
    reply = page(client, "/portal/staff/invite", "POST", data={"email": "Cashier@Shop.example", "store_id": store.id})
    assert reply.status_code == 200
    shown = re.search(r'value="http://localhost(/portal/invite/[^"]+)"', reply.get_data(as_text=True)).group(1)
    (invitation,) = [m for m in smtp_server.wait(2) if m["To"] == "cashier@shop.example"]
    assert invitation["Subject"] == "Green Field invites you to be a cashier on Metro Carbon Points"
    body = invitation.get_content()
    assert f"{app.config['PUBLIC_URL']}{shown}" in body and "Counter Store" in body and "14 days" in body
    cashier = db.session.scalar(select(User).where(User.email == "cashier@shop.example"))
    assert cashier.locale == "en"

    owner.locale = "zh"
    commit_unit_of_work()
    before = db.session.scalar(select(func.max(OutgoingMail.id)))  # the last mail queued so far
    staff = page(client, "/portal/staff").get_data(as_text=True)
    reinvite = re.search(r'/portal/staff/(\d+)/reinvite', staff).group(0)
    renewed = page(client, reinvite, "POST")
    new_link = re.search(r'value="http://localhost(/portal/invite/[^"]+)"', renewed.get_data(as_text=True)).group(1)
    assert new_link != shown
    again = [m for m in smtp_server.wait(3) if m["To"] == "cashier@shop.example"][1:]
    assert len(again) == 1 and "收银员" in again[0]["Subject"] and new_link in again[0].get_content()
    assert [m.locale for m in mails("staff.invitation") if m.id > before] == ["zh"]


def test_the_mail_goes_through_an_rq_job_after_the_commit(app, redis_app, smtp_server):
    """With Redis, the application's mail is queued as a row and an rq job once the unit of work commits, and a
    worker sends it: nothing reaches the SMTP server before the job runs."""
    operations.apply_merchant(name="Queue Café", category=Category.dining, contact_name="Wang",
                              contact_phone="13900000001", licence_no=licence(880), email="queue@shop.example",
                              password=PASSWORD, locale="en")
    assert get_queue("default").count == 0  # not handed over before the commit
    commit_unit_of_work()
    assert get_queue("default").count == 1 and smtp_server.messages == []
    assert [m.status for m in mails("merchant.application_received")] == [MailStatus.queued]
    work_burst("default")
    (message,) = smtp_server.wait(1)
    assert message["To"] == "queue@shop.example" and "Queue Café" in message["Subject"]
    assert [m.status for m in mails("merchant.application_received")] == [MailStatus.sent]
