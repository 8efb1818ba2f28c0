"""Short-lived caches for the kiosk feed: each station's rendered feed, and which station a kiosk token reads.

Every kiosk polls the feed, and what it shows changes far more slowly than it is asked for; building it takes about
ten queries and a JSON encoding, so a poll answered from a cache costs a small fraction of that. A cached value is
served for at most `ttl` seconds after it was built, whichever layer it comes from: that is the promise the callers
document (a change to the catalogue shows within the TTL, a revoked token is refused within the TTL).

Two layers: this process's memory, always, and Redis when the app has REDIS_URL, so that the processes and hosts
behind a load balancer share one build per TTL. Each value carries its deadline (wall-clock seconds) into Redis and
back, so a copy taken from Redis into memory expires when the original does, not a TTL later. Redis failing is not
the feed failing: the value is then built here.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import current_app
from redis import Redis, RedisError

from metropoints.core.jobs import redis_connection

log = logging.getLogger(__name__)

T = TypeVar("T")

# Past this many entries in memory, expired ones are dropped on the next store (stations and kiosk tokens are few).
PRUNE_AT = 1024
# Builds are serialised per key through a fixed set of locks: a lock per key would grow with every unknown token
# anybody sends. Two keys sharing a lock only wait for each other's build.
LOCK_STRIPES = 64
EXTENSION_KEY = "metropoints_kiosk_caches"


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a value travels through Redis."""

    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]


class TtlCache(Generic[T]):
    """Values by key, each kept until its deadline: `ttl` seconds after it was built, or earlier if its builder says
    so. One build at a time per key in this process (the other callers wait for it); a builder that raises caches
    nothing."""

    def __init__(self, *, ttl: float, namespace: str, redis: Redis | None = None, codec: Codec[T] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`ttl` <= 0 turns the cache off (every call builds). `redis` needs a `codec`."""
        if redis is not None and codec is None:
            raise ValueError("a Redis layer needs a codec")
        self.ttl = ttl
        self.namespace = namespace
        self.redis = redis
        self.codec = codec
        self.clock = clock
        self.builds = 0  # how many times a builder ran: what the tests and the curious look at
        self._entries: dict[str, tuple[float, T]] = {}
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]

    def get(self, key: str, build: Callable[[], tuple[T, float | None]]) -> T:
        """The value for `key`: from memory, else from Redis, else from `build()`, which returns the value and an
        optional deadline earlier than the TTL (a token that expires sooner, say)."""
        if self.ttl <= 0:
            self.builds += 1
            return build()[0]
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self.clock():
            return entry[1]
        # One thread builds; the others for the same key wait for its result instead of building it again.
        with self._locks[hash(key) % LOCK_STRIPES]:
            now = self.clock()
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                return entry[1]
            entry = self._from_redis(key, now)
            if entry is None:
                value, deadline = build()
                self.builds += 1
                # Counted from before the build read anything, so nothing is served longer than the TTL after the
                # data it shows was read.
                entry = (min(now + self.ttl, deadline if deadline is not None else math.inf), value)
                self._to_redis(key, entry, self.clock())
            self._store(key, entry, now)
            return entry[1]

    def forget(self, key: str | None = None) -> None:
        """Drop one key (or every key) here and in Redis, as if its TTL had passed."""
        keys = [key] if key is not None else list(self._entries)
        for name in keys:
            self._entries.pop(name, None)
        if self.redis is None:
            return
        try:
            if key is not None:
                self.redis.delete(self._redis_key(key))
            else:
                for name in self.redis.scan_iter(match=self._redis_key("*"), count=500):
                    self.redis.delete(name)
        except RedisError:
            log.warning("kiosk cache: Redis unavailable, could not forget %s", key or "all keys", exc_info=True)

    def _store(self, key: str, entry: tuple[float, T], now: float) -> None:
        """Keep an entry in memory, first dropping the expired ones when there are many."""
        if len(self._entries) >= PRUNE_AT:
            for name, (deadline, _) in list(self._entries.items()):
                if deadline <= now:
                    self._entries.pop(name, None)
        self._entries[key] = entry

    def _redis_key(self, key: str) -> str:
        """The Redis-side name of a key."""
        return f"{self.namespace}:{key}"

    def _from_redis(self, key: str, now: float) -> tuple[float, T] | None:
        """A live entry from Redis, or None (none, expired, or Redis not there)."""
        if self.redis is None:
            return None
        try:
            raw = self.redis.get(self._redis_key(key))
        except RedisError:
            log.warning("kiosk cache: Redis unavailable, building %s here", key, exc_info=True)
            return None
        if raw is None:
            return None
        deadline, _, payload = raw.partition(b"\n")
        if float(deadline) <= now:
            return None
        return float(deadline), self.codec.decode(payload)

    def _to_redis(self, key: str, entry: tuple[float, T], now: float) -> None:
        """Share an entry through Redis until its deadline (Redis drops it then)."""
        if self.redis is None:
            return
        deadline, value = entry
        milliseconds = math.ceil((deadline - now) * 1000)
        if milliseconds <= 0:
            return
        try:
            self.redis.set(self._redis_key(key), b"%.6f\n" % deadline + self.codec.encode(value), px=milliseconds)
        except RedisError:
            log.warning("kiosk cache: Redis unavailable, %s kept in this process only", key, exc_info=True)


def app_cache(name: str, *, ttl_setting: str, default_ttl: float, codec: Codec | None = None) -> TtlCache:
    """The app's cache called `name`, made on first use: its TTL from the setting `ttl_setting` (FLASK_<setting> in
    the environment; 0 turns it off), shared through Redis when REDIS_URL is set and a `codec` is given."""
    caches = current_app.extensions.setdefault(EXTENSION_KEY, {})
    cache = caches.get(name)
    if cache is None:
        config = current_app.config
        cache = TtlCache(ttl=float(config.get(ttl_setting, default_ttl)), namespace=f"{config['QUEUE_PREFIX']}:{name}",
                         redis=redis_connection() if codec is not None else None, codec=codec)
        cache = caches.setdefault(name, cache)
    return cache


def drop_app_caches() -> None:
    """Forget everything the app's caches hold (in Redis too) and the caches themselves, so the next use builds
    anew with the settings then in force."""
    for cache in current_app.extensions.pop(EXTENSION_KEY, {}).values():
        cache.forget()
