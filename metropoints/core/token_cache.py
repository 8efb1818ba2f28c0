"""A short-lived cache of live API tokens in each process, for the endpoints that opt in (the flash sale's
redemptions and the counter's validations: `require_token(..., cached=True)`).

Every request of those endpoints would otherwise cost a database round trip for its token alone. A token found live
in the database is kept here for at most API_TOKEN_CACHE_SECONDS (default 5, never more than
MAX_TOKEN_CACHE_SECONDS) and never past its own expiry. How a revoked token leaves it: in the process that revokes
it, at once (the revocation forgets it when it runs and again when its transaction commits, so a request in between
cannot put the old state back for long); in every other process, when its entry's lifetime ends — so a revoked token
is refused everywhere at most 5 seconds after the revocation committed. That bound is the price of the saved round
trip; no Redis is asked (a revocation generation there would cost a round trip per request too). Unknown, expired and
revoked tokens are never cached: each of their requests asks the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event

from metropoints.core.db import RoutingSession
from metropoints.core.models import ApiToken

MAX_TOKEN_CACHE_SECONDS = 5.0
# Past this many entries the expired ones are dropped on the next store; past twice as many, all of them (a flash
# sale's riders are a few thousand per lifetime).
PRUNE_AT = 50_000
EXTENSION_KEY = "metropoints_token_cache"
_FORGET = "forget_token_ids"  # session.info: tokens changed in this unit of work, forgotten again on its commit


class TokenCache:
    """Live tokens by hash, each until its deadline (monotonic seconds) or its wall-clock expiry."""

    def __init__(self, *, ttl: float, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        """`ttl` seconds at most (capped at MAX_TOKEN_CACHE_SECONDS); 0 turns the cache off."""
        self.ttl = min(float(ttl), MAX_TOKEN_CACHE_SECONDS)
        self.clock, self.wall = clock, wall
        self._entries: dict[str, tuple[float, float, int, Any]] = {}  # hash: (deadline, expiry, token id, token)
        self._lock = threading.Lock()

    def get(self, token_hash: str) -> Any | None:
        """The token cached for `token_hash`, or None (never cached, or its time is up)."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[0] <= self.clock() or entry[1] <= self.wall():
            self._entries.pop(token_hash, None)
            return None
        return entry[3]

    def put(self, token_hash: str, token_id: int, token: Any, expires_at: float | None) -> None:
        """Keep a token the database found live just now; `expires_at` its own expiry (epoch seconds) or None."""
        if self.ttl <= 0:
            return
        now = self.clock()
        with self._lock:
            if len(self._entries) >= PRUNE_AT:
                wall = self.wall()
                for key, entry in list(self._entries.items()):
                    if entry[0] <= now or entry[1] <= wall:
                        self._entries.pop(key, None)
                if len(self._entries) >= 2 * PRUNE_AT:
                    self._entries.clear()
            self._entries[token_hash] = (now + self.ttl, expires_at if expires_at is not None else float("inf"),
                                         token_id, token)

    def forget(self, token_ids: set[int]) -> None:
        """Drop the tokens with these ids (revoked, or changed)."""
        with self._lock:
            for key, entry in list(self._entries.items()):
                if entry[2] in token_ids:
                    self._entries.pop(key, None)


def init_app(app: Flask) -> None:
    """Give the app its cache (API_TOKEN_CACHE_SECONDS, default 5)."""
    app.extensions[EXTENSION_KEY] = TokenCache(ttl=app.config.get("API_TOKEN_CACHE_SECONDS", MAX_TOKEN_CACHE_SECONDS))


def token_cache() -> TokenCache | None:
    """This app's cache (None in an app made without init_app)."""
    return current_app.extensions.get(EXTENSION_KEY)


def forget_token(session: RoutingSession, token_id: int) -> None:
    """A token changed in this unit of work (revoked): forget it now, and again when the unit of work commits."""
    session.info.setdefault(_FORGET, set()).add(token_id)
    cache = token_cache()
    if cache is not None:
        cache.forget({token_id})


@event.listens_for(RoutingSession, "after_flush")
def _note_changed_tokens(session: RoutingSession, flush_context: Any) -> None:
    """A token row changed through the ORM (revoked or expired by hand) is forgotten when the change commits."""
    changed = {obj.id for obj in session.dirty if isinstance(obj, ApiToken)}
    if changed:
        session.info.setdefault(_FORGET, set()).update(changed)


@event.listens_for(RoutingSession, "after_commit")
def _forget_committed(session: RoutingSession) -> None:
    """Forget the tokens the committed unit of work changed."""
    changed = session.info.pop(_FORGET, None)
    if changed:
        cache = token_cache()
        if cache is not None:
            cache.forget(changed)


@event.listens_for(RoutingSession, "after_rollback")
def _drop_pending(session: RoutingSession) -> None:
    """A rolled-back unit of work changed no token."""
    session.info.pop(_FORGET, None)
