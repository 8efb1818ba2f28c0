"""The owner's stores and staff: the station picker, cashier invitations, deactivation, `flask staff create`."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from metropoints.core.db import db
from metropoints.core.errors import NotFound
from metropoints.core.models import AuditEntry, Role, User
from metropoints.marketplace import operations
from metropoints.marketplace.errors import InvalidInvite, UnknownStation
from metropoints.marketplace.models import StaffMember, Store
from metropoints.marketplace.queries import membership_of, station_choices
from tests.marketplace.conftest import PASSWORD, login, page


def store_data(**overrides) -> dict:
    """A valid store form."""
    data = {"name": "Green Field · 启工街店", "address": "铁西区启工街 1 号", "station_id": "0110",
            "opening_hours": "10:00–22:00"}
    data.update(overrides)
    return data


@pytest.fixture
def owner_client(app, create_merchant):
    """A client logged in as the owner of an approved merchant; returns (client, merchant)."""
    merchant = create_merchant("Green Field")
    client = app.test_client()
    login(client, db.session.get(User, merchant.owner_id).email)
    return client, merchant


def test_station_picker_lists_every_station_by_line_then_name(app):
    """The picker offers every station of the real network once, by (first) line, then name, labelled with both
    names and its lines."""
    from metropoints.core.models import Station

    options = station_choices()
    stations = {s.station_id: s for s in db.session.scalars(select(Station))}
    assert len(options) == len(stations) and len({value for value, _ in options}) == len(stations)
    keys = [(int(stations[v].lines.split(",")[0]), stations[v].name_en) for v, _ in options]
    assert keys == sorted(keys)
    first = stations[options[0][0]]
    assert options[0][1] == f"{first.name_zh} ({first.name_en}) · {first.lines}"


def test_owner_creates_edits_and_deactivates_stores(owner_client):
    """Stores are created and edited with a station from the real network (an unknown one is a 422 on the picker),
    listed for the owner, and deactivated (kept, marked, audited)."""
    client, merchant = owner_client
    form = page(client, "/portal/stores/new").get_data(as_text=True)
    assert '<option value="0110">' in form and "启工街 (QIGONGJIE) · 1<" in form.split('value="0110">')[1][:80]

    unknown = page(client, "/portal/stores/new", "POST", data=store_data(station_id="9999"))
    assert unknown.status_code == 422 and 'data-field="station_id"' in unknown.get_data(as_text=True)
    missing = page(client, "/portal/stores/new", "POST", data=store_data(name="", station_id=""))
    body = missing.get_data(as_text=True)
    assert missing.status_code == 422 and 'data-field="name"' in body and 'data-field="station_id"' in body
    with pytest.raises(UnknownStation):
        operations.create_store(actor=db.session.get(User, merchant.owner_id), merchant=merchant, name="x",
                                address="y", station_id="9999")
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Store)) == 0

    assert page(client, "/portal/stores/new", "POST", data=store_data()).status_code == 302
    store = db.session.scalar(select(Store))
    assert (store.merchant_id, store.station_id, store.opening_hours, store.active) == (
        merchant.id, "0110", "10:00–22:00", True)
    assert "启工街 1 号" in page(client, "/portal/stores").get_data(as_text=True)

    edit = page(client, f"/portal/stores/{store.id}/edit").get_data(as_text=True)
    assert 'value="Green Field · 启工街店"' in edit and '<option selected value="0110">' in edit
    reply = page(client, f"/portal/stores/{store.id}/edit", "POST",
                 data=store_data(address="铁西区启工街 2 号", station_id="0201"))
    assert reply.status_code == 302
    db.session.expire_all()
    assert (store.address, store.station_id) == ("铁西区启工街 2 号", "0201")

    assert page(client, f"/portal/stores/{store.id}/deactivate", "POST").status_code == 302
    db.session.expire_all()
    assert store.active is False
    assert "Deactivated" in page(client, "/portal/stores").get_data(as_text=True)
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.subject == f"store:{store.id}")) == (
        "store.deactivate")
    assert page(client, "/portal/stores/999999/edit").status_code == 404


def invite(client, email: str, store_id: int) -> str:
    """Invite a cashier through the portal; the invitation link shown on the page."""
    reply = page(client, "/portal/staff/invite", "POST", data={"email": email, "store_id": str(store_id)})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return re.search(r'value="(http://localhost/portal/invite/[^"]+)"', reply.get_data(as_text=True)).group(1)


def test_invited_cashier_sets_a_password_and_gets_the_cashier_pages_only(app, owner_client, create_store):
    """An invitation creates an inactive cashier of one store and a one-time link (only its hash stored);
    the link sets the password and activates the account; the cashier logs in, sees their store,
    has the cashier role only and gets 403 on the owner's pages."""
    client, merchant = owner_client
    store = create_store(merchant, "Counter Store", address="9 Counter Street")
    link = invite(client, "Cashier@Shop.example", store.id)
    token = link.rsplit("/", 1)[1]
    cashier = db.session.scalar(select(User).where(User.email == "cashier@shop.example"))
    member = membership_of(cashier.id)
    assert (cashier.role, cashier.active) == (Role.cashier, False)
    assert (member.merchant_id, member.store_id, member.is_owner, member.accepted_at) == (
        merchant.id, store.id, False, None)
    assert member.invite_token_hash and token not in member.invite_token_hash
    assert app.test_client().post("/login", data={"email": "cashier@shop.example", "password": PASSWORD}
                                  ).status_code == 422

    visitor = app.test_client()
    form = page(visitor, link)
    assert form.status_code == 200 and "Counter Store" in form.get_data(as_text=True)
    mismatch = page(visitor, link, "POST", data={"password": PASSWORD, "confirm": "something-else"})
    assert mismatch.status_code == 422 and 'data-field="confirm"' in mismatch.get_data(as_text=True)
    short = page(visitor, link, "POST", data={"password": "short", "confirm": "short"})
    assert short.status_code == 422 and "at least 8 characters" in short.get_data(as_text=True)
    assert page(visitor, link, "POST", data={"password": PASSWORD, "confirm": PASSWORD}).status_code == 302
    db.session.expire_all()
    assert cashier.active and member.accepted_at is not None and member.invite_token_hash is None
    assert page(visitor, link).status_code == 404  # used up

    login(visitor, "cashier@shop.example")
    landing = page(visitor, "/portal")
    assert landing.status_code == 200 and "9 Counter Street" in landing.get_data(as_text=True)
    for path in ("/portal/stores", "/portal/stores/new", "/portal/staff", "/portal/staff/invite",
                 f"/portal/stores/{store.id}/edit", "/portal/backoffice/merchants"):
        assert page(visitor, path).status_code == 403, path
    assert page(visitor, f"/portal/stores/{store.id}/deactivate", "POST").status_code == 403
    assert page(visitor, f"/portal/staff/{member.id}/deactivate", "POST").status_code == 403


def test_invitation_refuses_other_stores_taken_emails_and_bad_links(app, owner_client, create_merchant, create_store):
    """A cashier can only be bound to an open store of the owner's merchant; a taken e-mail is a field error;
    a forged link is 404; a renewed link replaces the old one."""
    client, merchant = owner_client
    own = create_store(merchant)
    other = create_store(create_merchant("Other"))
    closed = create_store(merchant, "Closed")
    operations.deactivate_store(actor=db.session.get(User, merchant.owner_id), store=closed)
    db.session.commit()
    for store_id in (other.id, closed.id, "abc"):
        reply = page(client, "/portal/staff/invite", "POST", data={"email": "new@shop.example", "store_id": store_id})
        assert reply.status_code == 422 and 'data-field="store_id"' in reply.get_data(as_text=True), store_id
    owner_email = db.session.get(User, merchant.owner_id).email
    taken = page(client, "/portal/staff/invite", "POST", data={"email": owner_email, "store_id": own.id})
    assert taken.status_code == 422
    assert "already has an account" in " ".join(re.findall(r'data-field="email">([^<]*)', taken.get_data(as_text=True)))
    assert db.session.scalar(select(func.count()).select_from(StaffMember)) == 2  # the two owners

    first = invite(client, "late@shop.example", own.id)
    member = db.session.scalar(select(StaffMember).where(StaffMember.store_id == own.id))
    renewed = page(client, f"/portal/staff/{member.id}/reinvite", "POST")
    second = re.search(r'value="(http://localhost/portal/invite/[^"]+)"', renewed.get_data(as_text=True)).group(1)
    assert first != second
    visitor = app.test_client()
    assert page(visitor, first).status_code == 404 and page(visitor, second).status_code == 200
    assert page(visitor, "/portal/invite/forged-token-forged-token-forged").status_code == 404
    with pytest.raises(InvalidInvite):
        operations.accept_invite(token="x" * 43, password=PASSWORD)


def test_owner_deactivates_a_cashier_who_is_then_locked_out(app, owner_client, create_store, create_cashier):
    """A deactivated cashier cannot log in, and a session they still hold is refused; the owner cannot be
    deactivated; the decision is audited."""
    client, merchant = owner_client
    member = create_cashier(create_store(merchant), "gone@shop.example")
    cashier_client = app.test_client()
    login(cashier_client, "gone@shop.example")
    assert page(cashier_client, "/portal").status_code == 200
    staff = page(client, "/portal/staff").get_data(as_text=True)
    assert "gone@shop.example" in staff and f"/portal/staff/{member.id}/deactivate" in staff

    owner_member = membership_of(merchant.owner_id)
    assert page(client, f"/portal/staff/{owner_member.id}/deactivate", "POST").status_code == 403
    assert page(client, f"/portal/staff/{member.id}/deactivate", "POST").status_code == 302
    db.session.expire_all()
    assert db.session.get(User, member.user_id).active is False
    locked = page(cashier_client, "/portal")
    assert locked.status_code == 403 or locked.headers["Location"].startswith("/login")
    assert app.test_client().post("/login", data={"email": "gone@shop.example", "password": PASSWORD}
                                  ).status_code == 422
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.subject == f"staff:{member.id}")
                                 .order_by(AuditEntry.id)).all()
    assert actions == ["staff.create", "staff.deactivate"]


def test_flask_staff_create_makes_an_active_cashier(app, runner, create_merchant, create_store):
    """`flask staff create EMAIL --store ID --password PW` creates an active cashier of that store (last line says
    so); an unknown store, a taken e-mail or a short password is a CLI error and creates nothing."""
    merchant = create_merchant()
    store = create_store(merchant)
    result = runner.invoke(args=["staff", "create", "Till@Shop.example", "--store", str(store.id),
                                 "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "till@shop.example"))
    assert result.output.strip().splitlines()[-1].startswith(f"cashier till@shop.example (user id {user.id}) at store")
    member = membership_of(user.id)
    assert (user.role, user.active, member.store_id, member.merchant_id, member.is_owner) == (
        Role.cashier, True, store.id, merchant.id, False)
    client = app.test_client()
    login(client, "till@shop.example")
    assert page(client, "/portal").status_code == 200

    for args, reason in ((["nobody@shop.example", "--store", "999999", "--password", PASSWORD], "unknown_store"),
                         (["till@shop.example", "--store", str(store.id), "--password", PASSWORD], "email_taken"),
                         (["short@shop.example", "--store", str(store.id), "--password", "short"], "invalid")):
        failed = runner.invoke(args=["staff", "create", *args])
        assert failed.exit_code == 1 and reason in failed.output, failed.output
    assert db.session.scalar(select(func.count()).select_from(StaffMember)) == 2
    with pytest.raises(NotFound):
        operations.create_cashier(email="x@shop.example", store_id=999999, password=PASSWORD)
