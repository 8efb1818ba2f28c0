"""The hot paths' token cache (core.token_cache): a token found live is kept for at most 5 seconds; the process that
revokes it forgets it at once, every other process within the cache's lifetime."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg

from metropoints.core.db import commit_unit_of_work
from metropoints.core.models import TokenKind
from metropoints.core.operations import hash_token, issue_token, revoke_token
from metropoints.core.token_cache import MAX_TOKEN_CACHE_SECONDS, TokenCache, token_cache
from tests.conftest import auth

VALIDATE = "/api/v1/counter/validate"


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        """Start at 1,000 s."""
        self.now = 1000.0

    def __call__(self) -> float:
        """The current reading."""
        return self.now


def staff_token(user) -> tuple[str, int]:
    """A staff token for `user` (committed): its raw value and id."""
    raw, record = issue_token(kind=TokenKind.staff, subject_id=user.id, ttl=timedelta(hours=1))
    commit_unit_of_work()
    return raw, record.id


def validate(client, token: str):
    """A validation of a code nobody holds (a 404 unknown_code once the token is accepted)."""
    return client.post(VALIDATE, json={"code": "1234-5678-9012"}, headers=auth(token))


def test_the_cache_never_keeps_a_token_past_five_seconds():
    """However long it is configured, an entry lives at most MAX_TOKEN_CACHE_SECONDS (5), and never past the
    token's own expiry."""
    ticks, wall = Ticks(), Ticks()
    cache = TokenCache(ttl=60, clock=ticks, wall=wall)
    assert cache.ttl == MAX_TOKEN_CACHE_SECONDS == 5
    cache.put("a", 1, "token a", None)
    cache.put("b", 2, "token b", wall.now + 2)
    ticks.now += 4.9
    assert cache.get("a") == "token a"
    wall.now += 2
    assert cache.get("b") is None
    ticks.now += 0.2
    assert cache.get("a") is None


def test_a_revoked_token_is_refused_within_the_cache_lifetime(app, client, create_shop, database_url):
    """A staff token revoked from another process (straight in the database) still validates from this process's
    cache until the entry's lifetime (at most 5 s) is over, and is refused (401) from then on; revoked here, it is
    refused at once."""
    shop = create_shop()
    raw, token_id = staff_token(shop.cashier)
    cache = token_cache()
    ticks = Ticks()
    cache.clock = ticks
    try:
        assert validate(client, raw).get_json()["error"]["code"] == "unknown_code"  # accepted; now cached
        with psycopg.connect(database_url, autocommit=True) as other:  # another process revokes it
            other.execute("UPDATE api_tokens SET revoked_at = now(), revoked_by = 'ops', revoke_reason = 'gone' "
                          "WHERE id = %s", (token_id,))
        ticks.now += MAX_TOKEN_CACHE_SECONDS - 0.5
        assert validate(client, raw).get_json()["error"]["code"] == "unknown_code"  # still within the lifetime
        ticks.now += 0.5
        reply = validate(client, raw)
        assert (reply.status_code, reply.get_json()["error"]["code"]) == (401, "invalid_token")

        raw, token_id = staff_token(shop.cashier)
        assert validate(client, raw).get_json()["error"]["code"] == "unknown_code"
        revoke_token(token_id=token_id, actor=None, reason="cashier left", actor_label="test")
        commit_unit_of_work()
        reply = validate(client, raw)  # the same instant: the revoking process forgot it
        assert (reply.status_code, reply.get_json()["error"]["code"]) == (401, "invalid_token")
    finally:
        cache.clock = time.monotonic


def test_unknown_and_revoked_tokens_are_never_cached(app, client, create_shop):
    """Only live tokens are cached: an unknown or revoked token asks the database every time."""
    shop = create_shop()
    raw, token_id = staff_token(shop.cashier)
    revoke_token(token_id=token_id, actor=None, reason="test", actor_label="test")
    commit_unit_of_work()
    for token in (raw, "st_not-a-token"):
        for _ in range(2):
            assert validate(client, token).status_code == 401
        assert token_cache().get(hash_token(token)) is None
