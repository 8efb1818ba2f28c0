"""The API against its own OpenAPI document, with schemathesis: requests generated from the document for every
operation, valid and invalid ones, each with the token its operation needs (rider, partner, kiosk, staff), are never
answered with a 5xx, and every reply has a documented status, content type and body schema."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from metropoints.accrual.ledger import post_entry
from metropoints.accrual.models import EntryKind
from metropoints.core.db import commit_unit_of_work
from metropoints.redemption.operations import redeem
from tests.helpers import trip
from tests.redemption.conftest import create_campaign, create_riders, token_for  # noqa: F401  (fixtures)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation: 17 operations, about 20 requests each, in well under a minute.
EXAMPLES_PER_OPERATION = 20
TIME_LIMIT_SECONDS = 60


@pytest.fixture
def tokens(app, client, create_rider, rider_token, create_partner, create_shop, create_campaign,  # noqa: F811
           token_for) -> dict[str, str]:  # noqa: F811
    """A token of each kind, and something for them to see: a rider with points, a linked reference, trips and a
    coupon; a shop with a live campaign (so the catalogue and the kiosk feed have items); a kiosk at its station."""
    from metropoints.kiosk.cache import drop_app_caches
    from metropoints.kiosk.operations import create_kiosk

    drop_app_caches()
    rider = create_rider(links=[("afc", "card-1")])
    post_entry(rider_id=rider.id, points=1000, kind=EntryKind.adjustment, reason="contract test", actor="test")
    shop = create_shop()
    campaign = create_campaign(shop, per_rider_limit=50)
    redeem(rider_id=rider.id, campaign_id=campaign.id)
    _, kiosk_token = create_kiosk(station_id=shop.store.station_id, actor_label="test")
    commit_unit_of_work()
    _, partner = create_partner()
    reply = client.post("/api/v1/trips", json={"trips": [trip("t1"), trip("x", entry="9999")]},
                        headers={"Authorization": f"Bearer {partner}"})
    assert reply.status_code == 200
    return {"rider": rider_token(rider), "partner": partner, "kiosk": kiosk_token, "staff": token_for(shop.cashier)}


def exercise(operation, headers: dict[str, str], statuses: Counter[int]) -> None:
    """Generated requests for one operation, valid and invalid, each sent with `headers` and its reply checked."""
    cases = st.one_of(operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
                      operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def call(case) -> None:
        """One generated request, checked."""
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        statuses[response.status_code] += 1

    call()


def test_every_reply_conforms_to_the_document(app, tokens):
    """For every documented operation, generated requests (valid and invalid) with the token the operation needs
    get no 5xx and only documented statuses, content types and bodies; the run is bounded and reproducible."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    for operation in operations:
        kind = operation.definition.raw["x-token-kind"]
        exercise(operation, {"Authorization": f"Bearer {tokens[kind]}"} if kind else {}, statuses)
    assert sum(statuses.values()) >= 10 * len(operations), statuses
    assert statuses[200] and statuses[422], statuses
    assert time.monotonic() - started < TIME_LIMIT_SECONDS


@pytest.mark.parametrize("station", ["01\x0009", "\x00", "0109\x01"])
def test_station_filter_with_control_characters(client, station):
    """A `station` filter with a NUL or another control character (found by the contract test) is a 422 invalid on
    field station, not a 500 from the database."""
    reply = client.get("/api/v1/catalog", query_string={"station": station})
    assert reply.status_code == 422 and reply.get_json()["error"]["field"] == "station"
