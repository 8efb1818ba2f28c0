"""Creators for the kiosk tests: the campaign creators of tests/campaigns, kiosks with tokens, features."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from metropoints.core.db import commit_unit_of_work, db
from tests.campaigns.conftest import (  # noqa: F401  (fixtures shared with the campaign tests)
    create_campaign,
    create_merchant,
    create_operator,
    create_store,
)
from tests.conftest import auth
from tests.kiosk import KIOSK_STATION


@pytest.fixture
def create_kiosk() -> Callable:
    """Creator: a kiosk at a station (committed); returns (kiosk, raw token)."""
    from metropoints.kiosk.operations import create_kiosk as make

    def create(station_id: str = KIOSK_STATION, label: str = ""):
        kiosk, token = make(station_id=station_id, label=label, actor_label="test")
        commit_unit_of_work()
        return kiosk, token

    return create


@pytest.fixture
def feature(create_operator) -> Callable:  # noqa: F811  (the imported fixture, requested)
    """Creator: feature a campaign on the kiosks of a station, as an operator (committed)."""
    from metropoints.campaigns.operations import feature_campaign

    operators = []

    def create(campaign, station_id: str = KIOSK_STATION) -> None:
        if not operators:
            operators.append(create_operator())
        feature_campaign(operator=operators[0], campaign=campaign, station_ids=[station_id])
        commit_unit_of_work()

    return create


@pytest.fixture(autouse=True)
def fresh_kiosk_caches(app) -> Iterator[None]:
    """Every kiosk test starts and ends with empty feed and token caches: tables are emptied between tests and ids
    start again, so a station's feed or a kiosk cached by one test would otherwise be served in the next."""
    from metropoints.kiosk.cache import drop_app_caches

    drop_app_caches()
    yield
    drop_app_caches()


@pytest.fixture
def read_feed(client) -> Callable:
    """Read the kiosk feed with a token (and If-None-Match when given), session state dropped first, and as a kiosk
    reads it once the caches' TTL has passed since the last read (tests/kiosk/test_cache.py checks the caching)."""
    from metropoints.kiosk.cache import drop_app_caches

    def read(token: str, etag: str | None = None):
        db.session.expire_all()
        drop_app_caches()
        headers = auth(token)
        if etag is not None:
            headers["If-None-Match"] = etag
        return client.get("/api/v1/kiosk/feed", headers=headers)

    return read
