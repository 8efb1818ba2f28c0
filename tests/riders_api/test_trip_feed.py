"""The partner trip feed over HTTP: the reply's counts, who may post, batch size, bad bodies, Idempotency-Key."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

import pytest
from conftest import auth
from sqlalchemy import func, select

from metropoints.accrual.models import LedgerEntry, Trip, TripBatch
from metropoints.core.db import db
from metropoints.core.timeutil import SERVICE_OFFSET, service_day, utcnow
from tests.helpers import trip


def post(client, token: str, body, **headers):
    """POST /trips with a JSON body and the partner's token (plus any headers)."""
    return client.post("/api/v1/trips", json=body, headers={**auth(token), **headers})


def balance(client, token: str) -> int:
    """The rider's balance as /me shows it."""
    return client.get("/api/v1/me", headers=auth(token)).get_json()["points_balance"]


def count(model) -> int:
    """How many rows a table holds."""
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def partner(create_partner) -> str:
    """A partner's token."""
    return create_partner()[1]


@pytest.fixture
def rider(create_rider, rider_token) -> str:
    """The token of a rider linked to afc/card-1."""
    return rider_token(create_rider(links=[("afc", "card-1")]))


def test_reply_counts_every_row(client, partner, rider):
    """The reply is {credited, duplicates, held, capped, rejected: [{trip_id, reason, line}]}, adding up to the rows;
    a refused row does not stop the rest."""
    post(client, partner, {"trips": [trip("old")]})
    start = utcnow() - timedelta(hours=2)
    rows = [trip("t1", exited_at=start), trip("old"), trip("t1", exited_at=start), trip("h1", ref="nobody"),
            trip("bad-station", entry="9999"), trip("same", exit="0109"), {"trip_id": "no-ref", "source": "afc"},
            trip("future", exited_at=utcnow() + timedelta(hours=1)), "not an object",
            trip("fast", minutes=1), trip("t2", exited_at=start + timedelta(minutes=30))]
    response = post(client, partner, {"trips": rows})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"credited", "duplicates", "held", "capped", "review", "rejected"}
    assert (body["credited"], body["duplicates"], body["held"], body["capped"], body["review"]) == (2, 2, 1, 0, 0)
    assert body["rejected"] == [
        {"trip_id": "bad-station", "reason": "unknown_station", "line": 5},
        {"trip_id": "same", "reason": "same_station", "line": 6},
        {"trip_id": "no-ref", "reason": "malformed", "line": 7},
        {"trip_id": "future", "reason": "in_future", "line": 8},
        {"trip_id": "", "reason": "malformed", "line": 9},
        {"trip_id": "fast", "reason": "implausible_speed", "line": 10},
    ]
    assert sum(v for v in body.values() if isinstance(v, int)) + len(body["rejected"]) == len(rows)
    assert balance(client, rider) == 18


def test_reply_counts_capped_trips(client, partner, rider):
    """New trips of a linked rider past the 60-point daily cap (one service day) count as capped, not credited."""
    noon = datetime.combine(service_day(utcnow()) - timedelta(days=1), time(12), tzinfo=SERVICE_OFFSET)
    rows = [trip(f"c{i:02d}", exited_at=noon + timedelta(minutes=25 * i)) for i in range(12)]
    body = post(client, partner, {"trips": rows}).get_json()
    assert (body["credited"], body["capped"], body["held"], body["duplicates"], body["rejected"]) == (10, 2, 0, 0, [])
    assert balance(client, rider) == 60


def test_rider_token_is_forbidden(client, partner, rider):
    """Only partners post trips: a rider token is a 403 forbidden and stores nothing."""
    response = post(client, rider, {"trips": [trip("t1")]})
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    assert count(Trip) == 0 and balance(client, rider) == 0


def test_feed_needs_a_token(client):
    """Without a token the feed is a 401 unauthorized; with an unknown one, 401 invalid_token."""
    assert post(client, "", {"trips": []}).get_json()["error"]["code"] == "unauthorized"
    assert post(client, "pa_unknown", {"trips": []}).get_json()["error"]["code"] == "invalid_token"


def test_too_many_trips(app, client, partner, rider):
    """More trips than TRIPS_MAX_PER_CALL is a 413 too_many_trips giving the limit, and stores nothing;
    exactly the limit is fine."""
    app.config["TRIPS_MAX_PER_CALL"] = 3
    try:
        response = post(client, partner, {"trips": [trip(f"t{i}", minutes=20 + i) for i in range(4)]})
        assert response.status_code == 413
        assert response.get_json()["error"]["code"] == "too_many_trips"
        assert response.get_json()["error"]["limit"] == 3
        assert count(Trip) == 0 and count(TripBatch) == 0
        assert post(client, partner, {"trips": [trip(f"t{i}") for i in range(3)]}).get_json()["credited"] == 3
    finally:
        app.config["TRIPS_MAX_PER_CALL"] = 10_000


@pytest.mark.parametrize("body", [{}, {"rows": [trip("t1")]}, {"trips": "t1"}, {"trips": {"0": trip("t1")}},
                                  {"trips": None}])
def test_body_without_trips_list(client, partner, body):
    """A JSON object without a "trips" list is a 422 invalid on field trips."""
    response = post(client, partner, body)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid" and response.get_json()["error"]["field"] == "trips"
    assert count(TripBatch) == 0


@pytest.mark.parametrize("data", ["[]", "not json", '"trips"'])
def test_body_not_an_object(client, partner, data):
    """A body that is not a JSON object is a 400 malformed_json."""
    response = client.post("/api/v1/trips", data=data, content_type="application/json", headers=auth(partner))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "malformed_json"


def test_empty_batch(client, partner):
    """An empty list is a valid call with all counts zero."""
    response = post(client, partner, {"trips": []})
    assert response.status_code == 200
    assert response.get_json() == {"credited": 0, "duplicates": 0, "held": 0, "capped": 0, "review": 0,
                                   "rejected": []}


def test_idempotent_replay(client, partner, rider):
    """A repeat with the same Idempotency-Key and body gets the identical first reply, marked
    Idempotent-Replayed: true, and credits nothing more."""
    body = {"trips": [trip("t1"), trip("h1", ref="nobody"), trip("x", entry="9999")]}
    first = post(client, partner, body, **{"Idempotency-Key": "batch-1"})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    assert balance(client, rider) == 6
    again = post(client, partner, body, **{"Idempotency-Key": "batch-1"})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert again.get_json()["credited"] == 1
    assert balance(client, rider) == 6
    assert (count(Trip), count(LedgerEntry), count(TripBatch)) == (2, 1, 1)
    without_key = post(client, partner, body).get_json()
    assert (without_key["credited"], without_key["duplicates"]) == (0, 2)


def test_idempotency_key_reused_for_other_body(client, partner, rider):
    """The same Idempotency-Key with another body is a 409 idempotency_key_reused and changes nothing."""
    assert post(client, partner, {"trips": [trip("t1")]}, **{"Idempotency-Key": "k"}).status_code == 200
    response = post(client, partner, {"trips": [trip("t2")]}, **{"Idempotency-Key": "k"})
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "idempotency_key_reused"
    assert balance(client, rider) == 6 and count(Trip) == 1


def test_refused_request_keeps_its_key(app, client, partner, rider):
    """A refused request (here a 413) does not use up its Idempotency-Key: a corrected retry with it is processed."""
    app.config["TRIPS_MAX_PER_CALL"] = 1
    try:
        too_big = post(client, partner, {"trips": [trip("t1"), trip("t2")]}, **{"Idempotency-Key": "k"})
        assert too_big.status_code == 413
    finally:
        app.config["TRIPS_MAX_PER_CALL"] = 10_000
    retry = post(client, partner, {"trips": [trip("t1")]}, **{"Idempotency-Key": "k"})
    assert retry.status_code == 200 and "Idempotent-Replayed" not in retry.headers
    assert retry.get_json()["credited"] == 1 and balance(client, rider) == 6


def test_idempotency_keys_are_per_partner(client, create_partner, rider):
    """Two partners may use the same key: each gets its own reply, neither sees the other's."""
    _, first, _, second = *create_partner(), *create_partner()
    assert post(client, first, {"trips": [trip("t1")]}, **{"Idempotency-Key": "k"}).get_json()["credited"] == 1
    other = post(client, second, {"trips": [trip("t2")]}, **{"Idempotency-Key": "k"})
    assert other.status_code == 200 and "Idempotent-Replayed" not in other.headers
    assert other.get_json()["credited"] == 1 and balance(client, rider) == 12


def test_idempotency_key_too_long(client, partner, rider):
    """An Idempotency-Key over 255 characters is a 422 invalid and stores nothing."""
    response = post(client, partner, {"trips": [trip("t1")]}, **{"Idempotency-Key": "k" * 256})
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid"
    assert count(Trip) == 0 and balance(client, rider) == 0


@pytest.mark.parametrize("field, value", [("trip_id", "t\x00"), ("rider_ref", "card-1\x00"), ("trip_id", "\ud800"),
                                          ("entry_station", "\udc00"), ("source", "\x00")])
def test_text_no_database_stores_refuses_its_row_only(client, partner, rider, field, value):
    """A row with a NUL character or a lone surrogate is refused as malformed (not a 500); the good row counts."""
    body = json.dumps({"trips": [trip("ok"), {**trip("bad"), field: value}]})
    response = client.post("/api/v1/trips", data=body, content_type="application/json", headers=auth(partner))
    assert response.status_code == 200, response.get_data(as_text=True)
    reply = response.get_json()
    assert [r["reason"] for r in reply["rejected"]] == ["malformed"] and reply["rejected"][0]["line"] == 2
    assert reply["credited"] == 1 and count(Trip) == 1 and balance(client, rider) == 6


def test_idempotency_key_not_printable(client, partner, rider):
    """An Idempotency-Key with control characters is a 422 invalid, not a 500, and stores nothing."""
    response = post(client, partner, {"trips": [trip("t1")]}, **{"Idempotency-Key": "k\x00"})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "Idempotency-Key"
    assert count(Trip) == 0


@pytest.mark.parametrize("field, value", [("entered_at", "0001-01-01T00:00:00+14:00"),
                                          ("exited_at", "9999-12-31T23:59:59-14:00")])
def test_time_beyond_the_calendar_is_a_malformed_row(client, partner, rider, field, value):
    """A time whose UTC value falls outside years 1-9999 refuses its row as malformed; the rest still counts."""
    response = post(client, partner, {"trips": [trip("ok"), {**trip("bad"), field: value}]})
    assert response.status_code == 200
    assert response.get_json()["rejected"] == [{"trip_id": "bad", "reason": "malformed", "line": 2}]
    assert response.get_json()["credited"] == 1


def test_trips_never_leak_between_riders(client, partner, create_rider, rider_token):
    """Each rider's /me/trips, /me/ledger and /me show only their own trips, whoever posted them."""
    alice = rider_token(create_rider(links=[("afc", "card-a")]))
    bob = rider_token(create_rider(links=[("afc", "card-b"), ("bus", "card-a")]))
    rows = [trip("a1", ref="card-a"), trip("a2", ref="card-a", exited_at=utcnow() - timedelta(hours=3)),
            trip("b1", ref="card-b"), trip("n1", ref="card-c")]
    assert post(client, partner, {"trips": rows}).get_json()["credited"] == 3
    for token, mine in ((alice, {"a1", "a2"}), (bob, {"b1"})):
        trips = client.get("/api/v1/me/trips", headers=auth(token)).get_json()["items"]
        assert {t["trip_id"] for t in trips} == mine
        ledger = client.get("/api/v1/me/ledger", headers=auth(token)).get_json()["items"]
        assert {e["ref"] for e in ledger} == {f"afc:{trip_id}" for trip_id in mine}
        assert balance(client, token) == 6 * len(mine)
