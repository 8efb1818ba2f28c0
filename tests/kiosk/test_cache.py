"""The kiosk feed's caches: a station's feed is built once per TTL and served from memory (or Redis) in between, a
change shows once the TTL has passed, stations never see each other's feed, and tokens stay checked: an unknown or
foreign token is refused at once, a revoked one within the token TTL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from redis import Redis
from sqlalchemy import event

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import ApiToken
from metropoints.core.operations import hash_token
from metropoints.core.timeutil import utcnow
from metropoints.kiosk.cache import EXTENSION_KEY, Codec, TtlCache, drop_app_caches
from metropoints.kiosk.feed import city_cache, feed_cache
from metropoints.kiosk.operations import token_cache
from tests.conftest import auth
from tests.kiosk import KIOSK_STATION, OTHER_STATION

FEED = "/api/v1/kiosk/feed"


class Clock:
    """A clock the test moves by hand (wall-clock seconds, as the caches read them)."""

    def __init__(self) -> None:
        """Start at a fixed, plausible moment."""
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move on."""
        self.now += seconds


@pytest.fixture
def clock(app) -> Clock:
    """The kiosk caches (made now from the app's settings) on a hand-moved clock."""
    clock = Clock()
    feed_cache().clock = clock
    token_cache().clock = clock
    return clock


@pytest.fixture
def poll(client) -> Callable:
    """Poll the feed as a kiosk does, the caches left as they are (session state dropped, as in a new request)."""

    def read(token: str, etag: str | None = None):
        db.session.expire_all()
        headers = auth(token)
        if etag is not None:
            headers["If-None-Match"] = etag
        return client.get(FEED, headers=headers)

    return read


@contextmanager
def counted_queries() -> Iterator[list[str]]:
    """The SQL statements sent while inside."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def world(create_kiosk, create_merchant, create_store, create_campaign):
    """A kiosk at KIOSK_STATION with its token, and one live campaign."""
    kiosk, token = create_kiosk()
    merchant, _ = create_merchant()
    store = create_store(merchant)
    return {"kiosk": kiosk, "token": token, "merchant": merchant, "store": store,
            "campaign": create_campaign(merchant, [store])}


def test_a_poll_within_the_ttl_is_served_from_the_cache(poll, world, clock):
    """The first poll builds the station's feed; polls within the TTL, full or revalidating, send no SQL at all
    (token and feed both cached) and get the same ETag and body."""
    first = poll(world["token"])
    assert first.status_code == 200 and feed_cache().builds == 1
    etag = first.headers["ETag"]
    clock.advance(4)
    with counted_queries() as statements:
        again = poll(world["token"])
        unchanged = poll(world["token"], etag)
    assert statements == []
    assert again.status_code == 200 and again.data == first.data and again.headers["ETag"] == etag
    assert unchanged.status_code == 304 and unchanged.data == b"" and unchanged.headers["ETag"] == etag
    assert feed_cache().builds == 1


def test_a_change_shows_once_the_ttl_has_passed(poll, world, clock, create_campaign):
    """A campaign going live is not shown by the cached copy, and is shown (a new ETag, the 304 refused) by the
    first poll after the feed's TTL; a rebuild with nothing changed keeps the ETag."""
    token = world["token"]
    before = poll(token).headers["ETag"]
    newer = create_campaign(world["merchant"], [world["store"]])
    clock.advance(feed_cache().ttl - 0.1)
    assert poll(token, before).status_code == 304
    clock.advance(0.2)
    changed = poll(token, before)
    assert changed.status_code == 200 and changed.headers["ETag"] != before
    assert newer.id in [item["campaign_id"] for item in changed.get_json()["catalog"]]
    assert feed_cache().builds == 2
    clock.advance(feed_cache().ttl + 1)
    assert poll(token, changed.headers["ETag"]).status_code == 304
    assert feed_cache().builds == 3


def test_forgetting_a_station_rebuilds_it(poll, world, clock):
    """forget(station) drops that station's copy: the next poll builds it again."""
    token = world["token"]
    poll(token)
    world["campaign"].stock_left -= 1
    commit_unit_of_work()
    feed_cache().forget(KIOSK_STATION)
    assert poll(token).get_json()["catalog"][0]["stock_left"] == world["campaign"].stock_left
    assert feed_cache().builds == 2


def test_stations_have_their_own_feeds(poll, world, clock, create_kiosk, feature):
    """Kiosks at two stations get their own station and featured campaigns, however the caches are warmed; two
    kiosks at the same station share one build."""
    feature(world["campaign"])
    _, other_token = create_kiosk(OTHER_STATION)
    _, neighbour_token = create_kiosk(KIOSK_STATION)
    here = poll(world["token"]).get_json()
    there = poll(other_token).get_json()
    assert (here["station"]["station_id"], there["station"]["station_id"]) == (KIOSK_STATION, OTHER_STATION)
    assert [item["campaign_id"] for item in here["featured"]] == [world["campaign"].id]
    assert there["featured"] == []
    assert feed_cache().builds == 2
    assert poll(neighbour_token).get_json()["station"]["station_id"] == KIOSK_STATION
    assert poll(other_token).get_json()["featured"] == []
    assert feed_cache().builds == 2


def test_the_city_figures_are_computed_once_for_every_station(poll, world, clock, create_kiosk):
    """The city's counter sums every credited trip: the stations' feeds share one computation per city TTL."""
    city_cache().clock = clock
    _, other_token = create_kiosk(OTHER_STATION)
    poll(world["token"])
    poll(other_token)
    assert feed_cache().builds == 2 and city_cache().builds == 1
    clock.advance(30)  # both station feeds expire (5 s); the city figures (60 s) do not
    poll(world["token"])
    poll(other_token)
    assert feed_cache().builds == 4 and city_cache().builds == 1
    clock.advance(31)
    poll(world["token"])
    assert city_cache().builds == 2


def test_unknown_and_foreign_tokens_are_refused_while_the_feed_is_cached(poll, world, clock, create_rider,
                                                                        rider_token, create_partner, client):
    """With the station's feed and a kiosk's token cached, an unknown token is still 401 `invalid_token`, a rider's
    or partner's token 403 `forbidden`, and no header 401 `unauthorized`; none of them is cached."""
    assert poll(world["token"]).status_code == 200
    for _ in range(2):
        reply = poll("ki_not-a-token")
        assert reply.status_code == 401 and reply.get_json()["error"]["code"] == "invalid_token"
    for token in (rider_token(create_rider()), create_partner()[1]):
        for _ in range(2):
            reply = poll(token)
            assert reply.status_code == 403 and reply.get_json()["error"]["code"] == "forbidden"
    reply = client.get(FEED, headers={"Authorization": "Basic abc"})
    assert reply.status_code == 401 and reply.get_json()["error"]["code"] == "unauthorized"
    assert len(token_cache()._entries) == 1


def revoke(token: str) -> None:
    """Revoke a kiosk token in the database (committed)."""
    stored = db.session.scalars(db.select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one()
    stored.revoked_at = utcnow()
    commit_unit_of_work()


def test_a_revoked_token_is_refused_within_the_token_ttl(poll, world, clock):
    """A token revoked after it was checked reads on only until the token TTL has passed since that check, then
    gets 401 `invalid_token`, though the station's feed is still cached for others."""
    token = world["token"]
    assert poll(token).status_code == 200
    revoke(token)
    clock.advance(token_cache().ttl - 0.1)
    assert poll(token).status_code == 200  # the documented window
    clock.advance(0.2)
    reply = poll(token)
    assert reply.status_code == 401 and reply.get_json()["error"]["code"] == "invalid_token"


def test_a_token_revoked_before_its_first_poll_is_refused_at_once(poll, world, create_kiosk, clock):
    """The window only follows a successful check: a revoked token never seen is refused, even with its station's
    feed cached by another kiosk."""
    _, second = create_kiosk()
    assert poll(world["token"]).status_code == 200
    revoke(second)
    assert poll(second).status_code == 401


def test_a_token_ttl_of_zero_checks_every_poll(app, poll, world):
    """KIOSK_TOKEN_TTL_SECONDS = 0: revocation takes effect on the very next poll."""
    app.config["KIOSK_TOKEN_TTL_SECONDS"] = 0
    try:
        drop_app_caches()
        token = world["token"]
        assert poll(token).status_code == 200
        revoke(token)
        assert poll(token).status_code == 401
    finally:
        del app.config["KIOSK_TOKEN_TTL_SECONDS"]


def test_a_feed_ttl_of_zero_builds_every_poll(app, poll, world):
    """KIOSK_FEED_TTL_SECONDS = 0 turns the feed cache off: every poll builds, and a change shows at once."""
    app.config["KIOSK_FEED_TTL_SECONDS"] = 0
    try:
        drop_app_caches()
        token = world["token"]
        before = poll(token).headers["ETag"]
        world["campaign"].stock_left -= 1
        commit_unit_of_work()
        assert poll(token, before).status_code == 200
        assert feed_cache().builds == 2
    finally:
        del app.config["KIOSK_FEED_TTL_SECONDS"]


def test_a_cached_token_lives_no_longer_than_the_token(app):
    """A builder's own deadline (a token expiring sooner) cuts the TTL short; a builder that raises caches nothing."""
    clock = Clock()
    cache = TtlCache(ttl=5, namespace="test", clock=clock)
    assert cache.get("k", lambda: ("a", clock.now + 1)) == "a"
    clock.advance(1)
    assert cache.get("k", lambda: ("b", None)) == "b"

    def refuse():
        raise ValueError("no")

    with pytest.raises(ValueError):
        cache.get("x", refuse)
    assert "x" not in cache._entries and cache.builds == 2


def test_feeds_are_shared_through_redis(redis_app, poll, world):
    """With REDIS_URL, a feed built by one process is served by another from Redis without building, until the
    deadline it was built with; then it is built again and shared again."""
    drop_app_caches()
    token = world["token"]
    first_process = feed_cache()
    assert first_process.redis is not None
    clock = Clock()
    first_process.clock = clock
    first = poll(token)
    redis_app.extensions.pop(EXTENSION_KEY)  # a second process: caches of its own, the same Redis
    second_process = feed_cache()
    second_process.clock = clock
    clock.advance(3)
    again = poll(token, first.headers["ETag"])
    assert again.status_code == 304 and second_process.builds == 0
    assert first_process.builds == 1
    clock.advance(3)  # past the first build's deadline in every process, whatever Redis still holds
    assert poll(token).status_code == 200 and second_process.builds == 1
    first_process.forget()  # what the test leaves in Redis


def test_without_redis_the_value_is_built_here(app):
    """Redis unreachable: every layer that needs it is skipped (a warning logged), and the value is built and kept
    in memory; the feed never fails for the cache's sake."""
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    cache = TtlCache(ttl=5, namespace="test", redis=unreachable, codec=Codec(encode=bytes, decode=bytes))
    assert cache.get("k", lambda: (b"built", None)) == b"built"
    assert cache.get("k", lambda: (b"again", None)) == b"built" and cache.builds == 1
    cache.forget()
