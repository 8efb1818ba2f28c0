"""A rider's tokens end: `POST /api/v1/auth/logout` revokes the token presented (from the next request on, and only
that one), a repeat changes nothing, and a token from `POST /auth/token` says when it expires."""

from __future__ import annotations

from datetime import datetime, timedelta

from conftest import auth

from metropoints.core.db import db
from metropoints.core.models import ApiToken
from metropoints.core.operations import hash_token
from metropoints.core.timeutil import utcnow

LOGOUT = "/api/v1/auth/logout"


def sign_in(client, phone: str = "13900000007") -> str:
    """Register a rider and return a token from a login (the register reply's token is a second one)."""
    client.post("/api/v1/auth/register", json={"phone": phone, "password": "password123"})
    reply = client.post("/api/v1/auth/token", json={"phone": phone, "password": "password123"})
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()["token"]


def stored(raw: str) -> ApiToken:
    """The token's row, read afresh."""
    db.session.expire_all()
    return db.session.scalars(db.select(ApiToken).where(ApiToken.token_hash == hash_token(raw))).one()


def test_login_reply_says_when_the_token_expires(app, client):
    """`expires_at` in the token reply is RIDER_TOKEN_DAYS from now, with an offset, and the stored expiry."""
    before = utcnow()
    reply = client.post("/api/v1/auth/register", json={"phone": "13900000008", "password": "password123"})
    assert reply.status_code == 201
    body = client.post("/api/v1/auth/token", json={"phone": "13900000008", "password": "password123"}).get_json()
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.utcoffset() is not None
    days = timedelta(days=app.config["RIDER_TOKEN_DAYS"])
    assert before + days - timedelta(seconds=5) <= expires <= utcnow() + days
    assert abs(stored(body["token"]).expires_at - expires) < timedelta(seconds=1)


def test_logout_revokes_the_presented_token_from_the_next_request(client):
    """204, and the very next request with that token is a 401 invalid_token; the row says the holder revoked it."""
    token = sign_in(client)
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    reply = client.post(LOGOUT, headers=auth(token))
    assert reply.status_code == 204 and reply.get_data() == b""
    after = client.get("/api/v1/me", headers=auth(token))
    assert after.status_code == 401 and after.get_json()["error"]["code"] == "invalid_token"
    row = stored(token)
    assert row.revoked_at is not None and row.revoked_by == "holder" and row.revoke_reason == "logout"


def test_logout_is_idempotent(client):
    """A second logout with the same token is 204 again and changes nothing (the first revocation time stays)."""
    token = sign_in(client)
    assert client.post(LOGOUT, headers=auth(token)).status_code == 204
    first = stored(token).revoked_at
    assert client.post(LOGOUT, headers=auth(token)).status_code == 204
    assert stored(token).revoked_at == first


def test_logout_ends_only_that_token(client):
    """The rider's other token (another phone signed in) keeps working."""
    token = sign_in(client)
    other = client.post("/api/v1/auth/token", json={"phone": "13900000007", "password": "password123"})
    other_token = other.get_json()["token"]
    assert client.post(LOGOUT, headers=auth(token)).status_code == 204
    assert client.get("/api/v1/me", headers=auth(other_token)).status_code == 200


def test_logout_needs_a_rider_token(client, create_partner):
    """No token is a 401 `unauthorized`, an unknown one a 401 `invalid_token`, a partner's a 403 — and the
    partner's token is not revoked by it."""
    assert client.post(LOGOUT).get_json()["error"]["code"] == "unauthorized"
    unknown = client.post(LOGOUT, headers=auth("ri_not-a-token"))
    assert unknown.status_code == 401 and unknown.get_json()["error"]["code"] == "invalid_token"
    _, partner_token = create_partner()
    assert client.post(LOGOUT, headers=auth(partner_token)).status_code == 403
    assert stored(partner_token).revoked_at is None


def test_logout_of_an_expired_token_changes_nothing(client):
    """An expired token's logout is a 204 that leaves the row unrevoked (it already does not work)."""
    token = sign_in(client)
    row = stored(token)
    row.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert client.post(LOGOUT, headers=auth(token)).status_code == 204
    assert stored(token).revoked_at is None


def test_logout_is_in_the_openapi_document(client):
    """The generated document has the operation, its 204 and the rider token it needs."""
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/auth/logout"]["post"]
    assert "204" in operation["responses"] and operation["x-token-kind"] == "rider"
