"""The rider's own view over HTTP: /me totals, linking metro references, and the /me/trips and /me/ledger pages."""

from __future__ import annotations

import base64
import json
from datetime import datetime, time, timedelta

import pytest
from conftest import auth
from sqlalchemy import func, select

from metropoints.accrual.models import LedgerEntry, Trip, TripMode
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import SERVICE_OFFSET, service_day, utcnow
from tests.helpers import trip
from tests.modes import credit_trip

TRIP_KEYS = {"trip_id", "source", "entry_station", "exit_station", "entered_at", "exited_at", "km", "points",
             "co2e_grams", "status", "mode", "rule_version"}
NOTHING = {"km": 0, "co2e_grams": 0, "points": 0}
LEDGER_KEYS = {"entry_id", "at", "points", "kind", "ref", "balance_after"}


def noon(days_back: int, minutes: int = 0) -> datetime:
    """Noon (Shanghai) of the service day `days_back` days ago, plus `minutes`: one service day, safely past."""
    day = service_day(utcnow()) - timedelta(days=days_back)
    return datetime.combine(day, time(12), tzinfo=SERVICE_OFFSET) + timedelta(minutes=minutes)


def day_trips(prefix: str, count: int, *, days_back: int = 1, ref: str = "card-1") -> list[dict]:
    """`count` 6.065 km trips on one service day, 25 minutes apart, ids in exit order."""
    return [trip(f"{prefix}{i:03d}", ref=ref, exited_at=noon(days_back, 25 * i)) for i in range(count)]


@pytest.fixture
def feed(client, create_partner):
    """Post rows through the partner feed over HTTP; returns the reply body."""
    _, token = create_partner()

    def post(rows: list[dict]) -> dict:
        response = client.post("/api/v1/trips", json={"trips": rows}, headers=auth(token))
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    return post


@pytest.fixture
def rider(create_rider, rider_token):
    """A rider linked to afc/card-1, with a token: (rider, headers)."""
    rider = create_rider(links=[("afc", "card-1")], name="Wang Fang")
    return rider, auth(rider_token(rider))


def get_me(client, headers) -> dict:
    """GET /me as JSON."""
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def walk(client, path: str, headers, limit: int) -> list[dict]:
    """Every item of a list endpoint, following next_cursor page by page."""
    items, cursor, pages = [], None, 0
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, headers=headers, query_string=query)
        assert response.status_code == 200
        page = response.get_json()
        assert set(page) == {"items", "next_cursor"} and len(page["items"]) <= limit
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit and pages < 100


def test_me_of_a_new_rider(client, create_rider, rider_token):
    """A new rider has nothing yet: zero points, 0 km, 0 g, no links."""
    rider = create_rider(name="Zhang San")
    body = get_me(client, auth(rider_token(rider)))
    assert body == {"rider_id": rider.id, "display_name": "Zhang San", "points_balance": 0, "km_total": 0,
                    "co2e_grams_total": 0, "links": [], "by_mode": {mode.value: NOTHING for mode in TripMode}}


def test_me_after_trips(client, rider, feed):
    """A 0109->0114 trip is 6.065 km: 6 points and round(6.065 x 44) = 267 g; two add up exactly."""
    _, headers = rider
    assert feed([trip("t1")])["credited"] == 1
    body = get_me(client, headers)
    assert (body["points_balance"], body["km_total"], body["co2e_grams_total"]) == (6, 6.065, 267)
    assert body["links"] == [{"source": "afc", "ref": "card-1"}]
    feed([trip("t2", exited_at=utcnow() - timedelta(hours=3))])
    body = get_me(client, headers)
    assert (body["points_balance"], body["km_total"], body["co2e_grams_total"]) == (12, 12.13, 534)


def test_me_splits_by_mode(client, rider, feed, create_rider):
    """by_mode has every mode; each adds its own credited and capped trips by its own rule version (metro 44 g/km,
    bus 30, bike 75, walking 75 g/km over 0.7 m a step and a point per 1,000 steps above 3,000); the totals are
    their sums, another rider's trips count nowhere."""
    owner, headers = rider
    assert feed([trip("t1"), *day_trips("c", 11, days_back=2)])["capped"] == 1
    credit_trip(rider_id=owner.id, mode="bus", metres=4321)
    credit_trip(rider_id=owner.id, mode="bus", metres=1000, exited_at=utcnow() - timedelta(hours=3))
    credit_trip(rider_id=owner.id, mode="bike", metres=2500)
    credit_trip(rider_id=owner.id, mode="walk", steps=8000)
    credit_trip(rider_id=create_rider().id, mode="bike", metres=9999)
    commit_unit_of_work()
    body = get_me(client, headers)
    assert body["by_mode"] == {
        "metro": {"km": 72.78, "co2e_grams": 12 * 267, "points": 66},
        "bus": {"km": 5.321, "co2e_grams": 130 + 30, "points": 4 + 1},
        "bike": {"km": 2.5, "co2e_grams": 188, "points": 2},
        "walk": {"km": 5.6, "co2e_grams": 420, "points": 5},
    }
    assert body["km_total"] == round(72.78 + 5.321 + 2.5 + 5.6, 3)
    assert body["co2e_grams_total"] == sum(m["co2e_grams"] for m in body["by_mode"].values())
    assert body["points_balance"] == sum(m["points"] for m in body["by_mode"].values())
    modes = {item["mode"] for item in walk(client, "/api/v1/me/trips", headers, 100)}
    assert modes == {"metro", "bus", "bike", "walk"}


def test_me_counts_capped_trips_not_held_ones(client, rider, feed):
    """Past the 60-point daily cap a trip earns nothing but its km and CO2e still count; held trips count nowhere."""
    _, headers = rider
    reply = feed([*day_trips("c", 11), trip("h1", ref="card-unlinked")])
    assert (reply["credited"], reply["capped"], reply["held"]) == (10, 1, 1)
    body = get_me(client, headers)
    assert (body["points_balance"], body["km_total"], body["co2e_grams_total"]) == (60, 66.715, 11 * 267)


def test_link_credits_held_trips(client, create_rider, rider_token, feed):
    """Linking a reference answers 201 and credits the trips held for it at once, under the daily cap."""
    rider = create_rider()
    headers = auth(rider_token(rider))
    assert feed([*day_trips("h", 11, ref="card-7"), trip("other", ref="card-8")])["held"] == 12
    response = client.post("/api/v1/me/links", json={"source": "afc", "ref": "card-7"}, headers=headers)
    assert response.status_code == 201
    assert response.get_json() == {"source": "afc", "ref": "card-7", "held_trips_credited": 11,
                                   "points_balance": 60}
    assert get_me(client, headers)["points_balance"] == 60
    trips = walk(client, "/api/v1/me/trips", headers, 100)
    assert sorted(t["status"] for t in trips) == ["capped"] + ["credited"] * 10
    assert {t["trip_id"] for t in trips} == {f"h{i:03d}" for i in range(11)}
    assert sum(t["points"] for t in trips) == 60


def test_relinking_own_ref_credits_nothing_twice(client, create_rider, rider_token, feed):
    """Linking a reference the rider already has is accepted again (201) and credits nothing a second time."""
    rider = create_rider()
    headers = auth(rider_token(rider))
    feed([trip("h1", ref="card-7")])
    link = {"source": "afc", "ref": "card-7"}
    assert client.post("/api/v1/me/links", json=link, headers=headers).get_json()["held_trips_credited"] == 1
    again = client.post("/api/v1/me/links", json=link, headers=headers)
    assert again.status_code == 201
    assert again.get_json() == {**link, "held_trips_credited": 0, "points_balance": 6}
    body = get_me(client, headers)
    assert body["points_balance"] == 6 and body["links"] == [link]
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


def test_ref_linked_elsewhere(client, create_rider, rider_token, feed):
    """A reference linked to one rider cannot be linked by another: 409 ref_linked_elsewhere, nothing moves."""
    owner = create_rider(links=[("afc", "card-7")])
    other = create_rider()
    feed([trip("t1", ref="card-7")])
    headers = auth(rider_token(other))
    response = client.post("/api/v1/me/links", json={"source": "afc", "ref": "card-7"}, headers=headers)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "ref_linked_elsewhere"
    assert get_me(client, headers)["links"] == [] and get_me(client, headers)["points_balance"] == 0
    assert get_me(client, auth(rider_token(owner)))["points_balance"] == 6


@pytest.mark.parametrize("body", [{"source": "AFC", "ref": "card-1"}, {"source": "", "ref": "card-1"},
                                  {"source": 5, "ref": "card-1"}, {"ref": "card-1"}, {"source": "afc"},
                                  {"source": "afc", "ref": "  "}, {"source": "afc", "ref": "r" * 65}])
def test_link_invalid(client, create_rider, rider_token, body):
    """A bad source or ref is a 422 invalid naming the field, and links nothing."""
    headers = auth(rider_token(create_rider()))
    response = client.post("/api/v1/me/links", json=body, headers=headers)
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid"
    assert response.get_json()["error"]["field"] in {"source", "ref"}
    assert get_me(client, headers)["links"] == []


def test_link_body_not_an_object(client, create_rider, rider_token):
    """A link body that is not a JSON object is a 400 malformed_json."""
    response = client.post("/api/v1/me/links", data='["afc"]', content_type="application/json",
                           headers=auth(rider_token(create_rider())))
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("data", ['{"source": "afc", "ref": "card\\u0000"}', '{"source": "afc", "ref": "\\udfff"}',
                                  b'{"source": "afc", "ref": "\xed\xa0\x80"}'])
def test_link_text_no_database_stores(client, create_rider, rider_token, data):
    """A reference with a NUL character or a lone surrogate is a 400 malformed_json, not a 500, and links nothing."""
    headers = auth(rider_token(create_rider()))
    response = client.post("/api/v1/me/links", data=data, content_type="application/json", headers=headers)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "malformed_json"
    assert get_me(client, headers)["links"] == []


def test_link_leaves_old_held_trips_alone(client, create_rider, rider_token, feed):
    """Held trips are credited at linking only HELD_TRIP_DAYS (30) back: an older one stays held."""
    feed([trip("recent", ref="card-7"), trip("old", ref="card-7", exited_at=utcnow() - timedelta(days=3))])
    old = db.session.scalar(select(Trip).where(Trip.trip_id == "old"))
    old.exited_at -= timedelta(days=28)
    commit_unit_of_work()
    headers = auth(rider_token(create_rider()))
    body = client.post("/api/v1/me/links", json={"source": "afc", "ref": "card-7"}, headers=headers).get_json()
    assert (body["held_trips_credited"], body["points_balance"]) == (1, 6)
    assert [t["trip_id"] for t in client.get("/api/v1/me/trips", headers=headers).get_json()["items"]] == ["recent"]
    db.session.refresh(old)
    assert old.status.value == "held" and old.rider_id is None


def test_trips_page_shape_and_order(client, rider, feed):
    """/me/trips items have the contract's fields, newest first, 20 by default, with a cursor to the rest."""
    _, headers = rider
    feed(day_trips("a", 10, days_back=3))
    feed(day_trips("b", 12, days_back=2))
    page = client.get("/api/v1/me/trips", headers=headers).get_json()
    assert len(page["items"]) == 20 and isinstance(page["next_cursor"], str)
    first = page["items"][0]
    assert set(first) >= TRIP_KEYS
    assert (first["trip_id"], first["source"], first["entry_station"], first["exit_station"]) == \
        ("b011", "afc", "0109", "0114")
    assert (first["km"], first["co2e_grams"], first["status"], first["points"]) == (6.065, 267, "capped", 0)
    assert datetime.fromisoformat(first["exited_at"]) == noon(2, 25 * 11)
    exits = [datetime.fromisoformat(item["exited_at"]) for item in page["items"]]
    assert exits == sorted(exits, reverse=True)


@pytest.mark.parametrize("path", ["/api/v1/me/trips", "/api/v1/me/ledger"])
def test_cursor_walks_every_item_once(client, rider, feed, path):
    """Following next_cursor visits every item exactly once, newest first, for any page size."""
    _, headers = rider
    for days_back in (3, 2, 1):
        feed(day_trips(f"d{days_back}-", 9, days_back=days_back))
    everything = walk(client, path, headers, 100)
    assert len(everything) == 27
    key = "trip_id" if path.endswith("trips") else "entry_id"
    for limit in (1, 7, 9, 26, 27):
        assert walk(client, path, headers, limit) == everything
    assert len({item[key] for item in everything}) == 27


@pytest.mark.parametrize("path", ["/api/v1/me/trips", "/api/v1/me/ledger"])
@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "²", "10 ", "000", "9" * 5000])
def test_limit_out_of_range(client, rider, path, limit):
    """limit must be a whole number from 1 to 100; anything else is a 422 invalid on field limit."""
    response = client.get(path, headers=rider[1], query_string={"limit": limit})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["error"] == {"code": "invalid", "message": response.get_json()["error"]["message"],
                                            "field": "limit"}


def forged(value) -> str:
    """A cursor-looking string we never handed out: any JSON, base64url without padding."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/api/v1/me/trips", "/api/v1/me/ledger"])
@pytest.mark.parametrize("cursor", ["not a cursor!", "%%%", "é", forged("x"), forged([]), forged(["7"]),
                                    forged([1.5]), forged({}), forged({"0": 1}), forged([True]),
                                    forged([10 ** 30]), forged([0]), forged([5, 6]), "W10",
                                    base64.b64encode(b"\xff\xfe").decode(), base64.b64encode(b"[" * 3000).decode()])
def test_forged_cursor(client, rider, path, cursor):
    """A cursor we did not make is a 422 invalid on field cursor, never a 500."""
    response = client.get(path, headers=rider[1], query_string={"cursor": cursor})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid"
    assert response.get_json()["error"]["field"] == "cursor"


def test_ledger_items_and_balance(client, rider, feed):
    """Ledger items have the contract's fields; newest first; the newest balance_after is the balance,
    and the balance is the sum of the entries."""
    _, headers = rider
    feed(day_trips("x", 4, days_back=2))
    feed([trip("late")])
    entries = walk(client, "/api/v1/me/ledger", headers, 100)
    assert len(entries) == 5 and all(set(e) >= LEDGER_KEYS for e in entries)
    assert entries[0]["ref"] == "afc:late" and entries[0]["kind"] == "trip" and entries[0]["points"] == 6
    assert [e["entry_id"] for e in entries] == sorted((e["entry_id"] for e in entries), reverse=True)
    assert [e["balance_after"] for e in entries] == [30, 24, 18, 12, 6]
    balance = get_me(client, headers)["points_balance"]
    assert entries[0]["balance_after"] == balance == sum(e["points"] for e in entries)
    assert datetime.fromisoformat(entries[0]["at"]).utcoffset() == timedelta(hours=8)
