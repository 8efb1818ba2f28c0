"""The back office's API tokens page: operators only; one kind's tokens newest first with whose each is, made,
expires, last used and state; pages by keyset; a revocation with a reason, audited, that the token's next request
feels."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from conftest import SHOP_PASSWORD, auth

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import ApiToken, AuditEntry, Role, TokenKind
from metropoints.core.operations import create_user, hash_token, issue_token
from metropoints.kiosk.operations import create_kiosk

PASSWORD = "correct-horse"
PAGE = "/backoffice/tokens/"


@pytest.fixture
def operator(client):
    """An operator, logged in on the test client, reading English."""
    user = create_user(email="ops@metro.example", password=PASSWORD, role=Role.operator)
    commit_unit_of_work()
    reply = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert reply.status_code == 302
    client.get("/lang/en")  # the texts below are the English ones
    return user


def token_id(raw: str) -> int:
    """The id of a raw token's row."""
    return db.session.scalar(db.select(ApiToken.id).where(ApiToken.token_hash == hash_token(raw)))


def rows_of(html: str) -> list[str]:
    """The ids of the table's rows, in order."""
    return re.findall(r'<tr data-id="(\d+)"', html)


def test_only_operators_open_it(client, create_shop):
    """A visitor is sent to the login page; a merchant owner gets 403."""
    assert client.get(PAGE).status_code == 302
    shop = create_shop()
    client.post("/login", data={"email": shop.owner.email, "password": SHOP_PASSWORD})
    assert client.get(PAGE).status_code == 403
    assert client.post("/backoffice/tokens/1/revoke", data={"reason": "x"}).status_code == 403


def test_each_kind_lists_whose_the_tokens_are(client, operator, create_partner, create_shop, create_rider,
                                              rider_token):
    """Partners by name, kiosks by station, staff by e-mail, riders by phone; the last use once there is one."""
    _, partner_token = create_partner(name="Shengjing Bus")
    create_kiosk(station_id="0119", actor_label="test")
    commit_unit_of_work()
    shop = create_shop()
    client.post("/api/v1/staff/token", json={"email": shop.cashier.email, "password": SHOP_PASSWORD})
    rider = create_rider()
    rider_token(rider)
    client.post("/api/v1/trips", json={"trips": []}, headers=auth(partner_token))
    partners = client.get(PAGE).get_data(as_text=True)
    assert "Shengjing Bus" in partners and "Not yet" not in partners
    kiosks = client.get(PAGE + "?kind=kiosk").get_data(as_text=True)
    assert "(0119)" in kiosks and "Not yet" in kiosks
    assert shop.cashier.email in client.get(PAGE + "?kind=staff").get_data(as_text=True)
    assert rider.phone in client.get(PAGE + "?kind=rider").get_data(as_text=True)
    assert 'name="reason"' in partners  # a live token can be revoked from here


def test_search_narrows_to_one_subject(client, operator, create_rider):
    """`q` finds a rider's tokens by phone (and no other rider's)."""
    first, second = create_rider(), create_rider()
    for rider in (first, second):
        issue_token(kind=TokenKind.rider, subject_id=rider.id, ttl=timedelta(days=1), label="login")
    commit_unit_of_work()
    html = client.get(PAGE, query_string={"kind": "rider", "q": second.phone}).get_data(as_text=True)
    assert second.phone in html and first.phone not in html and len(rows_of(html)) == 1


def test_pages_by_keyset(client, operator, create_rider):
    """Fifty to a page, newest first; the next page starts below the last id shown and repeats none."""
    rider = create_rider()
    for _ in range(53):
        issue_token(kind=TokenKind.rider, subject_id=rider.id, ttl=timedelta(days=1), label="login")
    commit_unit_of_work()
    first = client.get(PAGE + "?kind=rider").get_data(as_text=True)
    ids = rows_of(first)
    assert len(ids) == 50 and ids == sorted(ids, key=int, reverse=True)
    next_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = rows_of(client.get(next_url).get_data(as_text=True))
    assert len(second) == 3 and int(second[0]) < int(ids[-1])


def test_revoking_from_the_page(client, operator, create_partner):
    """The form revokes with the reason typed: audited with the operator, shown as revoked, and the partner's next
    call is refused; an empty reason revokes nothing."""
    _, token = create_partner(name="Shengjing Bus")
    target = token_id(token)
    refused = client.post(f"/backoffice/tokens/{target}/revoke", data={"reason": ""})
    assert refused.status_code == 302
    assert client.post("/api/v1/trips", json={"trips": []}, headers=auth(token)).status_code == 200
    done = client.post(f"/backoffice/tokens/{target}/revoke", data={"reason": "key leaked", "back": PAGE})
    assert done.status_code == 302
    assert client.post("/api/v1/trips", json={"trips": []}, headers=auth(token)).status_code == 401
    entry = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "token.revoke")).one()
    assert (entry.actor_id, entry.subject, entry.reason) == (operator.id, f"token:{target}", "key leaked")
    html = client.get(PAGE).get_data(as_text=True)
    assert 'data-state="revoked"' in html and "key leaked" in html and "ops@metro.example" in html
    again = client.post(f"/backoffice/tokens/{target}/revoke", data={"reason": "again"}, follow_redirects=True)
    assert "already revoked" in again.get_data(as_text=True)


def test_revoking_an_unknown_token_is_a_message(client, operator):
    """A token id that is no row is said so on the page, nothing written."""
    reply = client.post("/backoffice/tokens/999/revoke", data={"reason": "x"}, follow_redirects=True)
    assert reply.status_code == 200 and "does not exist" in reply.get_data(as_text=True)
    assert db.session.scalar(db.select(AuditEntry.id)) is None


def test_the_operators_navigation_links_it(client, operator):
    """The back office's navigation has the page."""
    assert f'href="{PAGE}"' in client.get("/backoffice/audit").get_data(as_text=True)
