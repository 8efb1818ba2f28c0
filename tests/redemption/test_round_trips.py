"""What the hot paths cost the database: a redemption, a sold-out attempt and a counter validation each stay within
a few statements, and a sold-out attempt takes no row lock (a flash sale's late buyers must not queue on anything)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from metropoints.core.db import db
from tests.conftest import auth


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements the app sends while the block runs, as the driver sees them: through SQLAlchemy and
    straight to psycopg (core.db.autocommit_row) alike (BEGIN, COMMIT and ROLLBACK are not statements here)."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def record(cursor, query, params=None, **kwargs):
        sent.append(query if isinstance(query, str) else str(query))
        return execute(cursor, query, params, **kwargs)

    psycopg.Cursor.execute = record  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]


def redeem(client, token: str, campaign_id: int):
    """POST /api/v1/redemptions."""
    return client.post("/api/v1/redemptions", json={"campaign_id": campaign_id}, headers=auth(token))


def test_a_redemption_is_three_statements(client, create_shop, create_campaign, create_riders, token_for, books):
    """The token, the campaign's terms with the rider's lock, and the one statement that takes stock, points and
    coupon: three statements, whether it sells or is refused on the limit; two once the token is in the hot paths'
    token cache (core.token_cache), as it is for the rider's next attempt."""
    shop = create_shop()
    campaign_id = create_campaign(shop, per_rider_limit=1).id  # read now: the test shares the requests' session
    token = token_for(create_riders()[0])
    with statements() as sent:
        assert redeem(client, token, campaign_id).status_code == 201
    assert len(sent) == 3, sent
    with statements() as sent:
        reply = redeem(client, token, campaign_id)
    assert reply.get_json()["error"]["code"] == "limit_reached"
    assert len(sent) == 2, sent
    assert not any("api_tokens" in statement for statement in sent), sent
    books()


def test_a_sold_out_attempt_is_two_statements_and_takes_no_lock(app, client, database_url, create_shop,
                                                                 create_campaign, create_riders, token_for, books):
    """Once the stock is gone an attempt reads the token and the campaign and answers out_of_stock, even while
    another transaction holds the rider's row: it never waits for a lock."""
    shop = create_shop()
    campaign_id = create_campaign(shop, stock_total=1).id
    first, late = create_riders(2)
    assert redeem(client, token_for(first), campaign_id).status_code == 201
    token, late_id = token_for(late), late.id
    with psycopg.connect(database_url) as other:
        other.execute("SELECT 1 FROM riders WHERE id = %s FOR UPDATE", (late_id,))
        release = threading.Timer(3.0, other.rollback)  # were the attempt to wait for the lock, it would wait 3 s
        release.start()
        started = time.monotonic()
        with statements() as sent:
            reply = redeem(client, token, campaign_id)
        waited = time.monotonic() - started
        release.cancel()
        other.rollback()
    assert waited < 1.5, waited
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (409, "out_of_stock")
    assert len(sent) == 2, sent
    books()


@pytest.mark.parametrize("again", [False, True])
def test_a_validation_is_three_statements(again, client, create_shop, create_campaign, create_riders, token_for):
    """The token, the counter's facts (staff, merchant, store, coupon, campaign's stores) and the guarded use: three
    statements; a refused second use reads the coupon once more to say why, and takes its token from the hot paths'
    token cache (core.token_cache), so it is three statements too."""
    from metropoints.core.db import commit_unit_of_work
    from metropoints.redemption.operations import redeem as buy

    shop = create_shop()
    campaign = create_campaign(shop)
    bought = buy(rider_id=create_riders()[0].id, campaign_id=campaign.id)
    commit_unit_of_work()
    token = token_for(shop.cashier)
    if again:
        assert client.post("/api/v1/counter/validate", json={"code": bought.code}, headers=auth(token)).status_code \
            == 200
    with statements() as sent:
        reply = client.post("/api/v1/counter/validate", json={"code": bought.code}, headers=auth(token))
    assert reply.status_code == (409 if again else 200), reply.get_json()
    assert len(sent) == 3, sent
    assert any("api_tokens" in statement for statement in sent) is not again, sent


def test_a_sold_out_attempt_opens_no_session(redis_app, client, create_shop, create_campaign, create_riders,
                                             token_for):
    """Once a campaign is marked sold out (campaigns.soldout), an attempt is answered from the mark before its token
    is looked up: no statement at all, and no ORM session made for it (nor removed after it)."""
    from metropoints.campaigns import soldout
    from metropoints.core.db import db

    shop = create_shop()
    campaign_id = create_campaign(shop, stock_total=1, stock_left=0).id
    first, second = (token_for(rider) for rider in create_riders(2))
    made: list[object] = []
    registry = db.session.registry
    create = registry.createfunc

    def counting(**kwargs):
        made.append(1)
        return create(**kwargs)

    try:
        assert redeem(client, first, campaign_id).get_json()["error"]["code"] == "out_of_stock"  # marks it
        db.session.remove()
        registry.createfunc = counting
        with statements() as sent:
            reply = redeem(client, second, campaign_id)
    finally:
        registry.createfunc = create
        soldout.marks().clear({campaign_id})  # campaign ids start again in the next test
    assert reply.get_json()["error"]["code"] == "out_of_stock"
    assert made == [] and sent == [], (made, sent)


def test_refused_attempts_keep_the_statements_prepared(client, create_shop, create_campaign, create_riders,
                                                       token_for):
    """A refused attempt (limit_reached) rolls its unit of work back keeping what psycopg prepared on the connection,
    so after six refusals the terms and the sale's statement are prepared there (psycopg prepares a statement at its
    fifth run). psycopg's own rollback would have deallocated them at every refusal, each attempt then planned
    afresh: a refusal in ten doubled PostgreSQL's CPU per validation at the counter (bench/counter.py)."""
    shop = create_shop()
    campaign_id = create_campaign(shop, per_rider_limit=1).id
    token = token_for(create_riders()[0])
    db.session.commit()
    db.engine.dispose()  # one connection from here: the requests run one after another
    assert redeem(client, token, campaign_id).status_code == 201
    for _ in range(6):
        assert redeem(client, token, campaign_id).get_json()["error"]["code"] == "limit_reached"
    with db.engine.connect() as connection:  # the pool's only connection, the one the attempts went on
        prepared = [row[0] for row in connection.connection.driver_connection.execute(
            "SELECT statement FROM pg_prepared_statements")]
    assert any("WITH campaign AS" in statement for statement in prepared), prepared
    assert any("WITH held AS" in statement for statement in prepared), prepared
