"""Onboarding: a merchant applies on the portal, the metro team approves, rejects, suspends or reinstates it."""

from __future__ import annotations

import re

from sqlalchemy import select

from metropoints.core.db import db
from metropoints.core.models import AuditEntry, Role, User
from metropoints.marketplace.models import Category, Merchant, MerchantStatus, StaffMember
from tests.marketplace.conftest import PASSWORD, licence, login, page


def application(**overrides) -> dict:
    """A valid application form."""
    data = {"name": "绿野咖啡 Green Field Café", "category": "dining", "contact_name": "李娜",
            "contact_phone": "13912345678", "licence_no": licence(900), "email": "owner@greenfield.example",
            "password": PASSWORD}
    data.update(overrides)
    return data


def field_errors(html: str, field: str) -> list[str]:
    """The error messages the page shows under one form field."""
    return re.findall(rf'<p class="error" data-field="{field}">([^<]*)</p>', html)


def audit(merchant_id: int) -> list[tuple[str, str, str]]:
    """(action, actor, reason) of the audit entries about a merchant, oldest first."""
    rows = db.session.scalars(select(AuditEntry).where(AuditEntry.subject == f"merchant:{merchant_id}")
                              .order_by(AuditEntry.id))
    return [(row.action, row.actor_label, row.reason) for row in rows]


def decide(client, merchant_id: int, decision: str, reason: str = ""):
    """Post an operator's decision on a merchant."""
    return page(client, f"/portal/backoffice/merchants/{merchant_id}/decision", "POST",
                data={"decision": decision, "reason": reason})


def test_apply_then_approve_then_owner_logs_in(app, create_operator):
    """An application creates an inactive owner, the merchant (applied) and the owner's membership; the owner
    cannot log in until an operator approves; approval is audited and activates the owner."""
    client = app.test_client()
    assert page(client, "/portal/apply").status_code == 200
    reply = page(client, "/portal/apply", "POST", data=application(licence_no=" 91210100ma0000090a "))
    assert reply.status_code == 302 and reply.headers["Location"] == "/portal/apply/thanks"
    assert "Thank you for applying" in page(client, "/portal/apply/thanks").get_data(as_text=True)

    merchant = db.session.scalar(select(Merchant))
    owner = db.session.get(User, merchant.owner_id)
    assert (merchant.status, merchant.category, merchant.licence_no) == (
        MerchantStatus.applied, Category.dining, "91210100MA0000090A")
    assert owner.role == Role.merchant_owner and owner.active is False and owner.password_hash != PASSWORD
    member = db.session.scalar(select(StaffMember))
    assert (member.user_id, member.merchant_id, member.is_owner, member.store_id) == (owner.id, merchant.id, True, None)
    assert client.post("/login", data={"email": owner.email, "password": PASSWORD}).status_code == 422

    operator = create_operator()
    back_office = app.test_client()
    login(back_office, operator.email)
    listing = page(back_office, "/portal/backoffice/merchants?status=applied").get_data(as_text=True)
    assert "Green Field Café" in listing
    assert "Green Field Café" not in page(back_office, "/portal/backoffice/merchants?status=approved").get_data(
        as_text=True)
    assert "91210100MA0000090A" in page(back_office, f"/portal/backoffice/merchants/{merchant.id}").get_data(
        as_text=True)
    assert decide(back_office, merchant.id, "approve").status_code == 302

    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).status == MerchantStatus.approved
    assert audit(merchant.id) == [("merchant.approve", operator.email, "")]
    login(client, owner.email)
    dashboard = page(client, "/portal")
    assert dashboard.status_code == 200 and "Green Field Café" in dashboard.get_data(as_text=True)


def test_reject_needs_a_reason_which_the_operator_sees(app, create_operator, create_merchant):
    """Rejecting without a reason is refused (422, nothing changes); with one it is stored, audited, shown in the
    back office, and the owner still cannot log in. A rejected merchant cannot be approved later (409)."""
    merchant = create_merchant("Rejected Shop", status=MerchantStatus.applied)
    owner_email = db.session.get(User, merchant.owner_id).email
    operator = create_operator()
    client = app.test_client()
    login(client, operator.email)

    refused = decide(client, merchant.id, "reject", "   ")
    assert refused.status_code == 422
    assert field_errors(refused.get_data(as_text=True), "reason") == ["Please give a reason for this decision."]
    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).status == MerchantStatus.applied and audit(merchant.id) == []

    assert decide(client, merchant.id, "reject", "Licence photo unreadable").status_code == 302
    db.session.expire_all()
    rejected = db.session.get(Merchant, merchant.id)
    assert (rejected.status, rejected.decision_reason) == (MerchantStatus.rejected, "Licence photo unreadable")
    assert audit(merchant.id) == [("merchant.reject", operator.email, "Licence photo unreadable")]
    assert "Licence photo unreadable" in page(client, f"/portal/backoffice/merchants/{merchant.id}").get_data(
        as_text=True)
    assert app.test_client().post("/login", data={"email": owner_email, "password": PASSWORD}).status_code == 422

    again = decide(client, merchant.id, "approve")
    assert again.status_code == 409
    assert "This decision is not possible in the merchant" in again.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).status == MerchantStatus.rejected and len(audit(merchant.id)) == 1


def test_suspend_locks_staff_out_and_takes_campaigns_off_sale_until_reinstated(
        app, create_operator, create_merchant, create_store, create_cashier):
    """Suspension (reason required, audited) changes the status at once: the catalogue drops the merchant's
    campaigns and its owner and cashiers get 403 with a clear message on portal pages; reinstating undoes both."""
    from datetime import timedelta

    from metropoints.campaigns.catalogue import live_campaign
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus
    from metropoints.core.db import commit_unit_of_work
    from metropoints.core.timeutil import utcnow

    merchant = create_merchant("Suspended Noodles")
    store = create_store(merchant)
    cashier = create_cashier(store)
    campaign = Campaign(merchant_id=merchant.id, status=CampaignStatus.approved, title="Free tea", category="dining",
                        benefit_type=BenefitType.free_item, point_price=10, stock_total=5, stock_left=5,
                        valid_from=utcnow() - timedelta(days=1), valid_until=utcnow() + timedelta(days=9))
    db.session.add(campaign)
    commit_unit_of_work()
    assert live_campaign(campaign.id) is not None
    owner_client, cashier_client, ops_client = app.test_client(), app.test_client(), app.test_client()
    login(owner_client, db.session.get(User, merchant.owner_id).email)
    login(cashier_client, db.session.get(User, cashier.user_id).email)
    operator = create_operator()
    login(ops_client, operator.email)
    reply = page(owner_client, "/portal/stores")
    assert reply.status_code == 200, reply.get_data(as_text=True)

    assert decide(ops_client, merchant.id, "suspend").status_code == 422
    assert decide(ops_client, merchant.id, "suspend", "Complaints about expired coupons").status_code == 302
    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).status == MerchantStatus.suspended
    assert live_campaign(campaign.id) is None
    for client, path in ((owner_client, "/portal"), (owner_client, "/portal/stores"), (owner_client, "/portal/staff"),
                         (owner_client, f"/portal/stores/{store.id}/edit"), (cashier_client, "/portal")):
        reply = page(client, path)
        assert reply.status_code == 403, path
        assert "suspended by the metro business team" in reply.get_data(as_text=True)
        assert store.address not in reply.get_data(as_text=True)
    assert page(owner_client, f"/portal/stores/{store.id}/deactivate", "POST").status_code == 403
    db.session.expire_all()
    assert db.session.get(type(store), store.id).active is True

    assert decide(ops_client, merchant.id, "approve").status_code == 409  # reinstate, not approve, ends a suspension
    assert decide(ops_client, merchant.id, "reinstate").status_code == 302
    db.session.expire_all()
    assert live_campaign(campaign.id) is not None
    assert page(owner_client, "/portal").status_code == 200 and page(cashier_client, "/portal").status_code == 200
    assert [(action, reason) for action, _, reason in audit(merchant.id)] == [
        ("merchant.approve", "test"), ("merchant.suspend", "Complaints about expired coupons"),
        ("merchant.reinstate", "")]


def test_application_form_errors_are_on_their_fields(app, create_merchant):
    """A malformed licence, a taken licence or e-mail, a short password: 422, a message under that field,
    nothing stored."""
    create_merchant(email="taken@shop.example")  # licence(1)
    client = app.test_client()
    cases = [
        ({"licence_no": "91210100MA000009"}, "licence_no", "The licence number has 18 digits and upper-case letters."),
        ({"licence_no": "91210100MA00000-9X"}, "licence_no",
         "The licence number has 18 digits and upper-case letters."),
        ({"licence_no": licence(1)}, "licence_no", "A merchant with this licence number has applied already."),
        ({"email": "TAKEN@shop.example"}, "email", "This e-mail address already has an account."),
        ({"password": "short"}, "password", "The password must have at least 8 characters."),
        ({"category": "casino"}, "category", None),
        ({"contact_phone": "call me"}, "contact_phone", "Enter a phone number of 7 to 20 digits."),
    ]
    for overrides, field, message in cases:
        reply = page(client, "/portal/apply", "POST", data=application(**overrides))
        assert reply.status_code == 422, overrides
        errors = field_errors(reply.get_data(as_text=True), field)
        assert errors and (message is None or errors == [message]), (overrides, errors)
    assert db.session.scalar(select(Merchant.id).where(Merchant.name == application()["name"])) is None


def test_back_office_is_for_operators_only(app, create_merchant):
    """Owners (and visitors) cannot reach the merchant list or decide on merchants, not even their own."""
    merchant = create_merchant("Own Shop")
    client = app.test_client()
    assert page(client, "/portal/backoffice/merchants").status_code == 302  # to the login page
    login(client, db.session.get(User, merchant.owner_id).email)
    assert page(client, "/portal/backoffice/merchants").status_code == 403
    assert decide(client, merchant.id, "suspend", "self").status_code == 403
    db.session.expire_all()
    assert db.session.get(Merchant, merchant.id).status == MerchantStatus.approved


def test_forms_need_a_csrf_token(app):
    """With CSRF on (as in production), the application form posted without its token is refused with 400."""
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        client = app.test_client()
        assert page(client, "/portal/apply", "POST", data=application()).status_code == 400
        form = page(client, "/portal/apply").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
        assert page(client, "/portal/apply", "POST", data={**application(), "csrf_token": token}).status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_applications_racing_for_one_licence_or_email_get_a_clear_refusal(app):
    """Two applications with the same licence (or e-mail) at once: one is taken, the other refused with its reason
    code, never a 500 from the unique index."""
    from metropoints.core.db import commit_unit_of_work
    from metropoints.core.errors import DomainError
    from metropoints.marketplace.operations import apply_merchant
    from tests.helpers import run_at_once

    def apply(n: int, licence_no: str, email: str):
        def call():
            merchant = apply_merchant(name=f"Racer {n}", category="dining", contact_name="Li",
                                      contact_phone="13912345678", licence_no=licence_no, email=email,
                                      password=PASSWORD)
            commit_unit_of_work()
            return merchant.id
        return call

    for calls, code in (([apply(1, licence(700), "a@race.example"), apply(2, licence(700), "b@race.example")],
                         "licence_taken"),
                        ([apply(3, licence(701), "c@race.example"), apply(4, licence(702), "c@race.example")],
                         "email_taken")):
        results = run_at_once(app, calls)
        refused = [r for r in results if isinstance(r, DomainError)]
        assert len(refused) == 1 and refused[0].code == code, results
        assert sum(isinstance(r, int) for r in results) == 1
