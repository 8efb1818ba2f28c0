"""API tokens: each use records a last-used time at most once a minute, without a write while the time read with the
token is fresh; a revoked token is refused from its very next request (rider, partner, staff, kiosk)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from conftest import SHOP_PASSWORD, auth
from sqlalchemy import event

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import ApiToken, AuditEntry, TokenKind
from metropoints.core.operations import (
    TOKEN_USE_RESOLUTION,
    TokenAlreadyRevoked,
    hash_token,
    resolve_token,
    revoke_token,
)
from metropoints.core.timeutil import utcnow
from metropoints.kiosk.cache import drop_app_caches
from metropoints.kiosk.operations import create_kiosk


@pytest.fixture
def no_kiosk_cache(app) -> Iterator[None]:
    """Kiosk tokens checked in the database on every poll (the token cache off), as before afterwards."""
    app.config["KIOSK_TOKEN_TTL_SECONDS"] = 0
    drop_app_caches()
    yield
    app.config.pop("KIOSK_TOKEN_TTL_SECONDS")
    drop_app_caches()


def stored(raw: str) -> ApiToken:
    """The token's row, read afresh."""
    db.session.expire_all()
    return db.session.scalars(db.select(ApiToken).where(ApiToken.token_hash == hash_token(raw))).one()


@contextmanager
def token_statements() -> Iterator[list[str]]:
    """The SQL statements touching api_tokens run while the block runs (on any connection of the engine)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        """Keep the statements that name the table."""
        if "api_tokens" in statement:
            seen.append(" ".join(statement.split()))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_first_use_records_the_time(client, create_rider, rider_token):
    """A token never used has no last use; its first request sets it to about now."""
    token = rider_token(create_rider())
    assert stored(token).last_used_at is None
    before = utcnow()
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert before - timedelta(seconds=1) <= stored(token).last_used_at <= utcnow()


def test_a_fresh_last_use_costs_no_write(client, create_rider, rider_token):
    """The token is read in one statement whether or not the use is recorded: within a minute of the last recorded
    use it writes nothing; once that is older than a minute, the same one statement writes it anew."""
    token = rider_token(create_rider())
    client.get("/api/v1/me", headers=auth(token))
    first = stored(token).last_used_at
    with token_statements() as seen:
        assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert len(seen) == 1, seen
    assert stored(token).last_used_at == first
    row = stored(token)
    row.last_used_at = utcnow() - TOKEN_USE_RESOLUTION - timedelta(seconds=1)
    commit_unit_of_work()
    stale = stored(token).last_used_at
    with token_statements() as seen:
        assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert len(seen) == 1, seen
    assert stored(token).last_used_at > first > stale


def test_recording_a_use_never_waits_for_another_request(client, database_url, create_rider, rider_token):
    """While another transaction holds the token's row (a long request writing its last use, an operator revoking
    it), a request with the token is answered at once; its use is left to a later request."""
    token = rider_token(create_rider())
    token_row = stored(token).id
    with psycopg.connect(database_url) as other:
        other.execute("SELECT 1 FROM api_tokens WHERE id = %s FOR UPDATE", (token_row,))
        release = threading.Timer(3.0, other.rollback)  # were the request to wait for the lock, it would wait 3 s
        release.start()
        started = time.monotonic()
        reply = client.get("/api/v1/me", headers=auth(token))
        waited = time.monotonic() - started
        release.cancel()
        other.rollback()
    assert reply.status_code == 200 and waited < 1.5, waited
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert stored(token).last_used_at is not None


def test_the_last_use_is_the_last_call_answered(client, create_rider, rider_token):
    """A refused call (404) rolls its unit of work back, the use with it: the time recorded is that of the last call
    answered without error, written by the next one."""
    token = rider_token(create_rider())
    assert client.get("/api/v1/me/coupons/999/qr.svg", headers=auth(token)).status_code == 404
    assert stored(token).last_used_at is None
    assert client.get("/api/v1/me", headers=auth(token)).status_code == 200
    assert stored(token).last_used_at is not None


def test_partner_and_kiosk_uses_are_recorded(client, create_partner, no_kiosk_cache):
    """The trip feed (require_token) and the kiosk feed (resolve_token) record their token's use."""
    _, partner_token = create_partner()
    assert client.post("/api/v1/trips", json={"trips": []}, headers=auth(partner_token)).status_code == 200
    assert stored(partner_token).last_used_at is not None
    _, kiosk_token = create_kiosk(station_id="0119", actor_label="test")
    commit_unit_of_work()
    assert client.get("/api/v1/kiosk/feed", headers=auth(kiosk_token)).status_code == 200
    assert stored(kiosk_token).last_used_at is not None


@pytest.mark.parametrize("kind", ["rider", "partner", "staff"])
def test_revocation_takes_effect_on_the_next_request(client, create_rider, rider_token, create_partner,
                                                     create_shop, kind):
    """A token that worked a moment ago is a 401 invalid_token on the request right after its revocation."""
    if kind == "rider":
        token, probe = rider_token(create_rider()), ("get", "/api/v1/me", None)
    elif kind == "partner":
        token, probe = create_partner()[1], ("post", "/api/v1/trips", {"trips": []})
    else:
        shop = create_shop()
        reply = client.post("/api/v1/staff/token", json={"email": shop.cashier.email, "password": SHOP_PASSWORD})
        token, probe = reply.get_json()["token"], ("post", "/api/v1/counter/validate", {"code": "000000000000"})

    def call():
        method, path, body = probe
        return getattr(client, method)(path, headers=auth(token), **({"json": body} if body is not None else {}))

    assert call().status_code != 401
    revoke_token(token_id=stored(token).id, actor=None, actor_label="test", reason="lost device")
    commit_unit_of_work()
    after = call()
    assert after.status_code == 401 and after.get_json()["error"]["code"] == "invalid_token"


def test_kiosk_token_revoked_is_refused_at_once_without_the_cache(client, no_kiosk_cache):
    """With the kiosk token cache off, a revoked kiosk token reads the feed no more on its next poll."""
    _, token = create_kiosk(station_id="0119", actor_label="test")
    commit_unit_of_work()
    assert client.get("/api/v1/kiosk/feed", headers=auth(token)).status_code == 200
    revoke_token(token_id=stored(token).id, actor=None, actor_label="test", reason="screen stolen")
    commit_unit_of_work()
    assert client.get("/api/v1/kiosk/feed", headers=auth(token)).status_code == 401


def test_revoking_needs_a_reason_and_happens_once(app, create_partner):
    """No reason is refused; a revocation is written on the token and in the audit log; a second one is
    TokenAlreadyRevoked and changes nothing."""
    _, token = create_partner(name="Shengjing Bus")
    row = stored(token)
    with pytest.raises(Exception, match="why"):
        revoke_token(token_id=row.id, actor=None, actor_label="ops@metro.example", reason="  ")
    revoke_token(token_id=row.id, actor=None, actor_label="ops@metro.example", reason="leaked in a log")
    commit_unit_of_work()
    row = stored(token)
    assert (row.revoked_by, row.revoke_reason) == ("ops@metro.example", "leaked in a log")
    entry = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "token.revoke")).one()
    assert entry.subject == f"token:{row.id}" and entry.reason == "leaked in a log"
    first = row.revoked_at
    with pytest.raises(TokenAlreadyRevoked):
        revoke_token(token_id=row.id, actor=None, actor_label="other@metro.example", reason="again")
    commit_unit_of_work()
    assert stored(token).revoked_at == first and stored(token).revoked_by == "ops@metro.example"
    assert resolve_token(token) is None


def test_issued_tokens_carry_their_kind_and_label(client, create_rider, rider_token, create_partner):
    """What the back office names a token by: a partner's token says `partner <name>`, a kiosk's its station."""
    _, partner_token = create_partner(name="Shengjing Bus")
    _, kiosk_token = create_kiosk(station_id="0119", actor_label="test")
    commit_unit_of_work()
    assert (stored(partner_token).kind, stored(partner_token).label) == (TokenKind.partner, "partner Shengjing Bus")
    assert (stored(kiosk_token).kind, stored(kiosk_token).label) == (TokenKind.kiosk, "kiosk 0119")


def test_a_hot_path_probe_commits_its_use_alone_and_asynchronously(client, create_rider, rider_token):
    """The hot paths' probe (autocommit) records a first use even on a refused request, with its own transaction
    committed asynchronously; the pooled connection it ran on keeps synchronous commits for whatever runs next (a
    sale's commit waits for the disk as before)."""
    token = rider_token(create_rider())
    seen: list[tuple[str, psycopg.Connection]] = []
    execute = psycopg.Cursor.execute

    def record(cursor, query, params=None, **kwargs):
        """Keep the statements naming api_tokens, with the connection each went on."""
        if "api_tokens" in str(query):
            seen.append((str(query), cursor.connection))
        return execute(cursor, query, params, **kwargs)

    psycopg.Cursor.execute = record  # type: ignore[method-assign]
    try:
        reply = client.post("/api/v1/redemptions", json={"campaign_id": 2**31 - 1}, headers=auth(token))
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    assert reply.get_json()["error"]["code"] == "not_live"
    assert stored(token).last_used_at is not None  # kept although the request was refused
    assert len(seen) == 1 and "set_config('synchronous_commit', 'off', true)" in seen[0][0], seen
    probed_on = seen[0][1]  # back in the pool, idle, as it came: no longer in autocommit, commits synchronous
    assert not probed_on.autocommit
    assert probed_on.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    probed_on.rollback()
