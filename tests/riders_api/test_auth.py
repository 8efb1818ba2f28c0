"""Rider accounts and bearer tokens over HTTP: register, log in, the login rate limit, and who may call what."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from conftest import auth

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import ApiToken, TokenKind
from metropoints.core.operations import issue_token
from metropoints.core.timeutil import utcnow

RIDER_ENDPOINTS = [("get", "/api/v1/me"), ("post", "/api/v1/me/links"), ("get", "/api/v1/me/trips"),
                   ("get", "/api/v1/me/ledger")]


def error_code(response) -> str:
    """The contract's error code of a reply, after checking the error body has its shape."""
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["code"]


def register(client, phone: str = "13900000001", password: str = "password123", **extra):
    """POST /auth/register with a JSON body."""
    return client.post("/api/v1/auth/register", json={"phone": phone, "password": password, **extra})


def login(client, phone: str = "13900000001", password: str = "password123", **kwargs):
    """POST /auth/token with a JSON body."""
    return client.post("/api/v1/auth/token", json={"phone": phone, "password": password}, **kwargs)


def test_register_returns_rider_and_working_token(client):
    """Registering answers 201 {rider_id, token}; the token opens /me for that rider, named after the phone."""
    response = register(client)
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"rider_id", "token"} and isinstance(body["rider_id"], int)
    me = client.get("/api/v1/me", headers=auth(body["token"]))
    assert me.status_code == 200
    assert me.get_json()["rider_id"] == body["rider_id"]
    assert me.get_json()["display_name"] == "rider-0001"


def test_register_keeps_display_name(client):
    """A given display_name is the rider's name on /me."""
    token = register(client, display_name="  Li Wei ").get_json()["token"]
    assert client.get("/api/v1/me", headers=auth(token)).get_json()["display_name"] == "Li Wei"


def test_register_phone_taken(client):
    """A second account on the same phone is a 409 phone_taken, and the first password still logs in."""
    assert register(client).status_code == 201
    response = register(client, password="another-password")
    assert response.status_code == 409 and error_code(response) == "phone_taken"
    assert login(client).status_code == 200
    assert login(client, password="another-password").status_code == 401


@pytest.mark.parametrize("body", [
    {"phone": "12ab5678", "password": "password123"},
    {"phone": "12345", "password": "password123"},
    {"phone": "1234567890123456", "password": "password123"},
    {"phone": 13900000001, "password": "password123"},
    {"password": "password123"},
    {"phone": "13900000001", "password": "short"},
    {"phone": "13900000001", "password": "x" * 201},
    {"phone": "13900000001", "password": 12345678},
    {"phone": "13900000001"},
    {"phone": "13900000001", "password": "password123", "display_name": "   "},
    {"phone": "13900000001", "password": "password123", "display_name": "n" * 65},
])
def test_register_invalid_input(client, body):
    """A bad phone, password or display name is a 422 invalid naming the field, and creates no account."""
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422 and error_code(response) == "invalid"
    assert response.get_json()["error"]["field"] in {"phone", "password", "display_name"}
    assert login(client, phone="13900000001").status_code == 401


@pytest.mark.parametrize("data", ["[1, 2]", '"phone"', "null", "42", "{not json", ""])
def test_register_body_not_an_object(client, data):
    """A body that is not a JSON object is a 400 malformed_json, never a 500."""
    response = client.post("/api/v1/auth/register", data=data, content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "malformed_json"


@pytest.mark.parametrize("data", [
    '{"phone": "13900000001", "password": "password123", "display_name": "a\\u0000b"}',
    '{"phone": "13900000001", "password": "password123", "display_name": "\\ud800"}',
    '{"phone": "13900000001", "password": "password123\\udc00"}',
    '{"phone": "13900000001\\u0000", "password": "password123"}',
    '{"phone": "13900000001", "password": "password123", "x\\u0000": 1}',
    "[" * 50_000,
])
def test_register_text_no_database_stores(client, data):
    """Valid JSON with NUL characters or lone surrogates (via \\u escapes), or nested past the parser's depth,
    is a 400 malformed_json, not a 500, and creates no account."""
    response = client.post("/api/v1/auth/register", data=data, content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "malformed_json"
    assert login(client).status_code == 401


@pytest.mark.parametrize("data", ['{"phone": "1390000\\u00000001", "password": "password123"}',
                                  '{"phone": "13900000001", "password": "\\ud83d"}'])
def test_token_text_no_database_stores(client, data):
    """Login credentials with NUL characters or lone surrogates are a 400 malformed_json, not a 500."""
    register(client)
    response = client.post("/api/v1/auth/token", data=data, content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "malformed_json"


def test_token_for_right_password(client):
    """Phone and password get 200 {token, expires_at}: a token that opens /me, expiring in RIDER_TOKEN_DAYS."""
    rider_id = register(client).get_json()["rider_id"]
    response = login(client)
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"token", "expires_at"}
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.utcoffset() is not None
    assert abs(expires - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    assert client.get("/api/v1/me", headers=auth(body["token"])).get_json()["rider_id"] == rider_id


@pytest.mark.parametrize("phone, password", [("13900000001", "wrong-password"), ("13900000009", "password123"),
                                             ("13900000001", None), (None, "password123")])
def test_token_bad_credentials(client, phone, password):
    """A wrong password, an unknown phone or a missing field are all the same 401 bad_credentials."""
    register(client)
    response = login(client, phone=phone, password=password)
    assert response.status_code == 401 and error_code(response) == "bad_credentials"


def test_token_body_not_an_object(client):
    """A login body that is not a JSON object is a 400 malformed_json."""
    response = client.post("/api/v1/auth/token", data="[]", content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "malformed_json"


def test_token_rate_limited_per_address(client):
    """The 11th login within a minute from one address is a 429 rate_limited, even with the right password;
    another address may still log in."""
    register(client)
    for _ in range(10):
        assert login(client, password="wrong-password").status_code == 401
    response = login(client)
    assert response.status_code == 429 and error_code(response) == "rate_limited"
    assert login(client, environ_base={"REMOTE_ADDR": "10.9.8.7"}).status_code == 200


@pytest.mark.parametrize("method, path", RIDER_ENDPOINTS)
def test_rider_endpoint_without_token(client, method, path):
    """No Authorization header, or one that is not a bearer token, is a 401 unauthorized."""
    response = getattr(client, method)(path)
    assert response.status_code == 401 and error_code(response) == "unauthorized"
    response = getattr(client, method)(path, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert response.status_code == 401 and error_code(response) == "unauthorized"
    response = getattr(client, method)(path, headers={"Authorization": "Bearer   "})
    assert response.status_code == 401 and error_code(response) == "unauthorized"


@pytest.mark.parametrize("method, path", RIDER_ENDPOINTS)
def test_rider_endpoint_with_garbage_token(client, method, path):
    """A bearer token we never issued is a 401 invalid_token."""
    response = getattr(client, method)(path, headers=auth("ri_not-a-token"))
    assert response.status_code == 401 and error_code(response) == "invalid_token"


@pytest.mark.parametrize("method, path", RIDER_ENDPOINTS)
def test_rider_endpoint_with_partner_token(client, create_partner, method, path):
    """A live token of another kind (a partner's) is a 403 forbidden on rider endpoints."""
    _, token = create_partner()
    response = getattr(client, method)(path, headers=auth(token), json={"source": "afc", "ref": "card-1"})
    assert response.status_code == 403 and error_code(response) == "forbidden"


def test_expired_token(client, create_rider):
    """A rider token past its expires_at is a 401 invalid_token."""
    rider = create_rider()
    raw, _ = issue_token(kind=TokenKind.rider, subject_id=rider.id, ttl=timedelta(seconds=-1))
    commit_unit_of_work()
    response = client.get("/api/v1/me", headers=auth(raw))
    assert response.status_code == 401 and error_code(response) == "invalid_token"


def test_token_stops_working_when_it_expires(client, create_rider, rider_token):
    """A token that worked stops working once its expires_at is moved into the past, and when revoked."""
    token = rider_token(create_rider())
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    record = db.session.query(ApiToken).one()
    record.expires_at = utcnow() - timedelta(seconds=1)
    commit_unit_of_work()
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 401
    record = db.session.query(ApiToken).one()
    record.expires_at, record.revoked_at = None, utcnow()
    commit_unit_of_work()
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 401


def test_zero_token_lifetime_is_not_forever(app, client):
    """With RIDER_TOKEN_DAYS = 0 a new token is expired at once; it must not become a token that never expires."""
    app.config["RIDER_TOKEN_DAYS"] = 0
    try:
        token = register(client).get_json()["token"]
        assert client.get("/api/v1/me", headers=auth(token)).status_code == 401
    finally:
        app.config["RIDER_TOKEN_DAYS"] = 30
