"""Smoke test on SQLite: the real migrations, then the rider API, the partner feed and the file import end to end.

The default configuration runs on SQLite, so the set-wise SQL of the feed must work there too.
"""

from __future__ import annotations

import csv
from datetime import datetime, time, timedelta

import pytest
from conftest import auth
from sqlalchemy import func, select

from metropoints.accrual.ingest import TRIP_FIELDS
from metropoints.accrual.models import LedgerEntry
from metropoints.core.db import db
from metropoints.core.timeutil import SERVICE_OFFSET, service_day, utcnow
from tests.helpers import trip

pytestmark = pytest.mark.sqlite


def noon(days_back: int, minutes: int = 0) -> datetime:
    """Noon (Shanghai) of the service day `days_back` days ago, plus `minutes`."""
    day = service_day(utcnow()) - timedelta(days=days_back)
    return datetime.combine(day, time(12), tzinfo=SERVICE_OFFSET) + timedelta(minutes=minutes)




def register(client, phone: str) -> str:
    """Register a rider over HTTP; their token."""
    response = client.post("/api/v1/auth/register", json={"phone": phone, "password": "password123"})
    assert response.status_code == 201
    return response.get_json()["token"]


def link(client, token: str, ref: str) -> dict:
    """Link afc/`ref` over HTTP; the reply."""
    response = client.post("/api/v1/me/links", json={"source": "afc", "ref": ref}, headers=auth(token))
    assert response.status_code == 201
    return response.get_json()


def get(client, token: str, path: str) -> dict:
    """GET a rider endpoint as JSON."""
    response = client.get(path, headers=auth(token))
    assert response.status_code == 200
    return response.get_json()


def ledger_sum(rider_id: int) -> int:
    """The sum of the rider's ledger entries."""
    return db.session.scalar(select(func.coalesce(func.sum(LedgerEntry.points), 0))
                             .where(LedgerEntry.rider_id == rider_id))


def test_feed_links_and_file_import_on_sqlite(sqlite_app, tmp_path):
    """On SQLite a batch is counted exactly like on PostgreSQL (credited, capped, held, duplicates, rejected),
    the balance is the sum of the ledger, a later link credits held trips, and `flask trips import` prints the
    counts on its last line."""
    client, runner = sqlite_app.test_client(), sqlite_app.test_cli_runner()
    created = runner.invoke(args=["partners", "create", "afc-feed"])
    assert created.exit_code == 0, created.output
    partner = created.stdout.strip().splitlines()[-1]

    alice = register(client, "13900000001")
    assert link(client, alice, "card-1")["held_trips_credited"] == 0
    rows = [trip(f"c{i:02d}", exited_at=noon(1, 25 * i)) for i in range(11)]
    rows += [trip("held-1", ref="card-2", exited_at=noon(2)), trip("c03", exited_at=noon(1, 75)),
             trip("bad", exit="9999")]
    response = client.post("/api/v1/trips", json={"trips": rows}, headers=auth(partner))
    assert response.status_code == 200
    assert response.get_json() == {"credited": 10, "duplicates": 1, "held": 1, "capped": 1, "review": 0,
                                   "rejected": [{"trip_id": "bad", "reason": "unknown_station", "line": 14}]}
    again = client.post("/api/v1/trips", json={"trips": rows[:2]}, headers=auth(partner)).get_json()
    assert (again["credited"], again["duplicates"]) == (0, 2)

    me = get(client, alice, "/api/v1/me")
    assert (me["points_balance"], me["km_total"], me["co2e_grams_total"]) == (60, 66.715, 11 * 267)
    assert me["points_balance"] == ledger_sum(me["rider_id"])
    trips = get(client, alice, "/api/v1/me/trips?limit=100")["items"]
    assert [t["trip_id"] for t in trips] == [f"c{i:02d}" for i in reversed(range(11))]
    assert [t["status"] for t in trips] == ["capped"] + ["credited"] * 10
    assert datetime.fromisoformat(trips[0]["exited_at"]) == noon(1, 250)
    ledger = get(client, alice, "/api/v1/me/ledger?limit=4")
    assert len(ledger["items"]) == 4 and ledger["items"][0]["balance_after"] == 60
    rest = get(client, alice, f"/api/v1/me/ledger?limit=100&cursor={ledger['next_cursor']}")
    assert len(rest["items"]) == 6 and rest["next_cursor"] is None
    assert [e["balance_after"] for e in ledger["items"] + rest["items"]] == list(range(60, 0, -6))

    bob = register(client, "13900000002")
    assert link(client, bob, "card-2") == {"source": "afc", "ref": "card-2", "held_trips_credited": 1,
                                           "points_balance": 6}
    assert [(t["trip_id"], t["status"]) for t in get(client, bob, "/api/v1/me/trips")["items"]] == \
        [("held-1", "credited")]
    bob_me = get(client, bob, "/api/v1/me")
    assert bob_me["points_balance"] == 6 == ledger_sum(bob_me["rider_id"])

    path = tmp_path / "trips.csv"
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=TRIP_FIELDS)
        writer.writeheader()
        writer.writerows([trip("f1", exited_at=noon(3)), trip("f2", ref="card-2", exited_at=noon(3)),
                          trip("f3", ref="card-9", exited_at=noon(3)), trip("c00"), trip("f4", entry="0000")])
    result = runner.invoke(args=["trips", "import", str(path), "--partner", "afc-feed"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].endswith(
        "done: credited 2, capped 0, duplicates 1, held 1, rejected 1")
    assert get(client, alice, "/api/v1/me")["points_balance"] == 66 == ledger_sum(me["rider_id"])
    assert get(client, bob, "/api/v1/me")["points_balance"] == 12 == ledger_sum(bob_me["rider_id"])


def test_green_modes_on_sqlite(sqlite_app):
    """On SQLite too: each mode's row credits, the same metro ride from another source is a duplicate, a walking
    day tops up only the difference, and with review on a fourth ride back and forth waits for review."""
    from tests.accrual.test_modes import bike, bus, walk

    sqlite_app.config["REVIEW_FARMED_TRIPS"] = True
    client, runner = sqlite_app.test_client(), sqlite_app.test_cli_runner()
    partner = runner.invoke(args=["partners", "create", "feed"]).stdout.strip().splitlines()[-1]
    assert runner.invoke(args=["buslines", "set", "105", "--avg-trip-m", "4000"]).exit_code == 0
    alice = register(client, "13900000003")
    for source in ("afc", "app", "bikeco", "health"):
        assert client.post("/api/v1/me/links", json={"source": source, "ref": "card-1"},
                           headers=auth(alice)).status_code == 201
    rows = [trip("m1", exited_at=noon(1, -240), entry="0101", exit="0110"),
            trip("m1-app", source="app", exited_at=noon(1, -239), entry="0101", exit="0110"),
            bus("b1", boarded_at=noon(1, -200), minutes=None),
            bike("k1", ended_at=noon(1, -100), distance_m=3000),
            walk("w1", steps=8000), walk("w2", source="app", steps=9000)]
    rows += [trip(f"r{i}", exited_at=noon(1, 60 * i), entry="0109" if i % 2 else "0114",
                  exit="0114" if i % 2 else "0109") for i in range(4)]
    body = client.post("/api/v1/trips", json={"trips": rows}, headers=auth(partner)).get_json()
    assert (body["credited"], body["duplicates"], body["review"], body["rejected"]) == (8, 1, 1, [])
    trips = {item["trip_id"]: item for item in get(client, alice, "/api/v1/me/trips?limit=100")["items"]}
    assert (trips["m1-app"]["status"], trips["m1-app"]["reason"]) == ("duplicate", "reported_by_other_source")
    assert (trips["w1"]["points"], trips["w2"]["points"], trips["w2"]["mode"]) == (5, 1, "walk")
    assert (trips["r3"]["status"], trips["r3"]["reason"], trips["r3"]["points"]) == ("review", "back_and_forth", 0)
    assert trips["b1"]["km"] == 4.0 and trips["b1"]["line"] == "105" and trips["b1"]["entry_station"] is None
