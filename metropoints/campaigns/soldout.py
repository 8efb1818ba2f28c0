"""Sold-out marks: once the database has found a campaign without stock, later attempts to buy it are answered
`out_of_stock` without asking the database again, until stock comes back.

In a flash sale nine attempts in ten come after the stock is gone; each used to cost the database a round trip (and
the app the work of making one). A mark lives in Redis, shared by every worker and host, and each process keeps a
copy for at most SOLD_OUT_LOCAL_SECONDS, so most sold-out replies cost no round trip at all. A reading that found
no mark is kept in the process for SOLD_OUT_UNMARKED_SECONDS too, so the sales of a campaign on sale do not each ask
Redis (its read was 8% of a sale's samples in the workers).

The database stays the only judge of a sale: a mark is set only after the database found no stock (the guarded
UPDATE found none, the campaign's terms read none, or the sale that took the last unit committed), and a mark never
sells anything; a campaign without a mark goes to the database as before. Stock comes back by a committed unit of
work that adds stock, cancels a coupon or changes the campaign through the ORM (pause, resume, end, edit, approval):
after its commit, the unit of work bumps the campaign's generation in Redis and deletes the mark. A mark is set only
if the generation is still the one read before the database was asked (one Lua script), so a mark computed from a
reading older than a committed restock never lands. Limits, stated plainly:
- another process may still answer from its in-process copy for up to SOLD_OUT_LOCAL_SECONDS after a restock
  committed elsewhere (the process that restocked forgets its copy at once);
- a process sees a mark another one set up to SOLD_OUT_UNMARKED_SECONDS late, and meanwhile asks the database (which
  answers out_of_stock, and marks here); the stock generation it keeps with that reading can only be older than the
  one in Redis, so a mark it sets is refused after any restock since, never set wrongly;
- between a restock's commit and its clearing (the next Redis call) a reply may still read the mark;
- a mark lasts SOLD_OUT_MARK_SECONDS in Redis at most, so a change the app did not make (SQL by hand) or a clearing
  that Redis missed shows within that time, after which the database is asked (and marks again if still sold out).
Without Redis (REDIS_URL unset, or Redis not answering) there are no marks: every attempt goes to the database, no
error is raised, and Redis is tried again after SOLD_OUT_RETRY_SECONDS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from redis import Redis, RedisError
from sqlalchemy import event

from metropoints.campaigns.models import Campaign
from metropoints.core.db import RoutingSession, db

log = logging.getLogger(__name__)

SOLD_OUT_MARK_SECONDS = 10.0
SOLD_OUT_LOCAL_SECONDS = 0.5
SOLD_OUT_UNMARKED_SECONDS = 0.05
_UNMARKED_KEPT = 1024  # readings without a mark kept per process at most
SOLD_OUT_RETRY_SECONDS = 1.0
REDIS_TIMEOUT_SECONDS = 0.25  # a hot path waits no longer than this on a Redis that does not answer
EXTENSION_KEY = "metropoints_soldout_marks"
_TO_MARK = "soldout_to_mark"  # session.info: {campaign id: generation} to mark once the unit of work commits
_TO_CLEAR = "soldout_to_clear"  # session.info: campaign ids whose stock came back in this unit of work

# Set the mark only while the campaign's stock generation is the one read before the database was asked.
_MARK_IF_SAME_GENERATION = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] then
    redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
    return 1
end
return 0
"""


class SoldOutMarks:
    """The marks of one app: Redis (shared) and this process's copies of them."""

    def __init__(self, redis: Redis | None, *, prefix: str, mark_seconds: float = SOLD_OUT_MARK_SECONDS,
                 local_seconds: float = SOLD_OUT_LOCAL_SECONDS, unmarked_seconds: float = SOLD_OUT_UNMARKED_SECONDS,
                 retry_seconds: float = SOLD_OUT_RETRY_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        """`redis` None: no marks at all."""
        self.redis, self.prefix = redis, prefix
        self.url: str | None = None  # the REDIS_URL they were made for
        self.mark_ms = max(1, int(mark_seconds * 1000))
        self.local_seconds, self.retry_seconds, self.clock = local_seconds, retry_seconds, clock
        self._local: dict[int, float] = {}  # campaign id: until when this process trusts its copy
        self.unmarked_seconds = unmarked_seconds
        self._unmarked: dict[int, tuple[float, str]] = {}  # campaign id: (until when, generation) of a reading
        self._down_until = 0.0
        self._script = redis.register_script(_MARK_IF_SAME_GENERATION) if redis is not None else None

    def _keys(self, campaign_id: int) -> list[str]:
        """The mark's key and the stock generation's key of a campaign."""
        return [f"{self.prefix}:soldout:{campaign_id}", f"{self.prefix}:stockgen:{campaign_id}"]

    def _redis_failed(self, what: str) -> None:
        """Leave Redis alone for a while after a failure: attempts go to the database meanwhile."""
        self._down_until = self.clock() + self.retry_seconds
        log.warning("sold-out marks: Redis unavailable (%s); the database answers meanwhile", what, exc_info=True)

    def check(self, campaign_id: int) -> tuple[bool, str | None]:
        """(True, None) when the campaign is marked sold out; else (False, the stock generation to mark it with
        later, or None when no mark can be set now)."""
        now = self.clock()
        until = self._local.get(campaign_id)
        if until is not None:
            if until > now:
                return True, None
            self._local.pop(campaign_id, None)
        if self.redis is None or now < self._down_until:
            return False, None
        unmarked = self._unmarked.get(campaign_id)
        if unmarked is not None and unmarked[0] > now:
            return False, unmarked[1]
        try:
            mark, generation = self.redis.mget(self._keys(campaign_id))
        except RedisError:
            self._redis_failed("reading a mark")
            return False, None
        if mark is not None:
            self._unmarked.pop(campaign_id, None)
            self._local[campaign_id] = now + self.local_seconds
            return True, None
        found = generation.decode() if generation is not None else "0"
        if self.unmarked_seconds > 0:
            if len(self._unmarked) >= _UNMARKED_KEPT:  # any id may be asked for: keep the live readings only
                self._unmarked = {key: kept for key, kept in self._unmarked.items() if kept[0] > now}
                if len(self._unmarked) >= _UNMARKED_KEPT:
                    self._unmarked.clear()
            self._unmarked[campaign_id] = (now + self.unmarked_seconds, found)
        return False, found

    def mark(self, campaign_id: int, generation: str | None) -> None:
        """Mark a campaign the database found without stock, unless its stock came back since `generation` was
        read (or no generation could be read)."""
        if generation is None or self._script is None or self.clock() < self._down_until:
            return
        try:
            marked = self._script(keys=self._keys(campaign_id), args=[generation, self.mark_ms])
        except RedisError:
            self._redis_failed("setting a mark")
            return
        if marked:
            self._unmarked.pop(campaign_id, None)
            self._local[campaign_id] = self.clock() + self.local_seconds

    def clear(self, campaign_ids: set[int]) -> None:
        """Stock came back (committed): a new generation, and no mark, here and in Redis."""
        for campaign_id in campaign_ids:
            self._local.pop(campaign_id, None)
            self._unmarked.pop(campaign_id, None)
        if self.redis is None:
            return
        try:
            pipe = self.redis.pipeline(transaction=True)
            for campaign_id in sorted(campaign_ids):
                mark_key, generation_key = self._keys(campaign_id)
                pipe.incr(generation_key)
                pipe.delete(mark_key)
            pipe.execute()
        except RedisError:
            # Not fatal: the marks end within SOLD_OUT_MARK_SECONDS, and a sale still needs the database's word.
            self._redis_failed(f"clearing the marks of campaigns {sorted(campaign_ids)}")

    def is_marked_here(self, campaign_id: int) -> bool:
        """Whether this process holds a live copy of the campaign's mark (for tests and the curious)."""
        until = self._local.get(campaign_id)
        return until is not None and until > self.clock()


def _made_for(app: Flask) -> SoldOutMarks:
    """The app's marks for its REDIS_URL as it is now: on Redis (short timeouts of their own), none without it."""
    url = app.config.get("REDIS_URL")
    found = app.extensions.get(EXTENSION_KEY)
    if found is None or found.url != url:
        redis = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                               socket_connect_timeout=REDIS_TIMEOUT_SECONDS) if url else None
        found = app.extensions[EXTENSION_KEY] = SoldOutMarks(
            redis, prefix=app.config["QUEUE_PREFIX"],
            mark_seconds=app.config.get("SOLD_OUT_MARK_SECONDS", SOLD_OUT_MARK_SECONDS),
            local_seconds=app.config.get("SOLD_OUT_LOCAL_SECONDS", SOLD_OUT_LOCAL_SECONDS),
            unmarked_seconds=app.config.get("SOLD_OUT_UNMARKED_SECONDS", SOLD_OUT_UNMARKED_SECONDS))
        found.url = url
    return found


def init_app(app: Flask) -> None:
    """Make the app's marks now rather than at its first sale."""
    _made_for(app)


def marks() -> SoldOutMarks:
    """This app's marks (made again if its REDIS_URL changed)."""
    return _made_for(current_app._get_current_object())  # type: ignore[attr-defined]


def check(campaign_id: int) -> tuple[bool, str | None]:
    """SoldOutMarks.check on this app's marks."""
    return marks().check(campaign_id)


def mark_now(campaign_id: int, generation: str | None) -> None:
    """The database just found no stock (a reading, true whatever this unit of work does next): mark it."""
    marks().mark(campaign_id, generation)


def mark_on_commit(campaign_id: int, generation: str | None) -> None:
    """This unit of work took the last unit of stock: mark the campaign once (and only if) it commits."""
    if generation is not None:
        db.session.info.setdefault(_TO_MARK, {})[campaign_id] = generation


def clear_on_commit(campaign_id: int) -> None:
    """This unit of work gives the campaign stock back (a cancel, more stock): clear its mark once it commits."""
    db.session.info.setdefault(_TO_CLEAR, set()).add(campaign_id)


@event.listens_for(RoutingSession, "after_flush")
def _note_changed_campaigns(session: RoutingSession, flush_context: Any) -> None:
    """A campaign changed through the ORM (status, stock, dates) may be on sale again: clear on commit."""
    changed = {obj.id for obj in session.dirty if isinstance(obj, Campaign)}
    if changed:
        session.info.setdefault(_TO_CLEAR, set()).update(changed)


@event.listens_for(RoutingSession, "after_commit")
def _apply_committed(session: RoutingSession) -> None:
    """After the commit: clear the marks of campaigns whose stock came back, then mark those sold out by it."""
    to_clear = session.info.pop(_TO_CLEAR, None)
    to_mark = session.info.pop(_TO_MARK, None)
    if not to_clear and not to_mark:
        return
    found = marks()
    if to_clear:
        found.clear(to_clear)
    for campaign_id, generation in (to_mark or {}).items():
        if not to_clear or campaign_id not in to_clear:
            found.mark(campaign_id, generation)


@event.listens_for(RoutingSession, "after_rollback")
def _drop_pending(session: RoutingSession) -> None:
    """A rolled-back unit of work neither sold out nor restocked anything."""
    session.info.pop(_TO_CLEAR, None)
    session.info.pop(_TO_MARK, None)
