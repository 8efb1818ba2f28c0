"""core.api.error_payload, every 4xx body: the plain dict it builds for plain values is what the contract's models
(ErrorDetail inside Error) dump, key order included; other values (times, enums, nested data) go through the models."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import pytest

from metropoints.core.api import Error, ErrorDetail, error_payload


def dumped(code: str, message: str, **fields) -> dict:
    """The body as the models write it."""
    detail = ErrorDetail.model_construct(code=code, message=message, **fields)
    return Error.model_construct(error=detail).model_dump(mode="json", exclude_unset=True)


class Colour(enum.StrEnum):
    red = "red"


@pytest.mark.parametrize("fields", [
    {},
    {"field": "campaign_id"},
    {"limit": 1, "field": "campaign_id", "fields": None},
    {"points_balance": 40, "point_price": 100},
    {"used_at": "2026-12-03T08:00:00+08:00", "store_id": 3},
    {"fields": {"email": "Not an e-mail address."}},
    {"flag": True, "nothing": None, "big": 10**30},
    {"at": datetime(2026, 12, 3, tzinfo=UTC)},
    {"colour": Colour.red},
])
def test_the_body_is_what_the_models_dump(fields):
    body = error_payload("some_code", "A message.", **fields)
    assert body == dumped("some_code", "A message.", **fields)
    assert list(body["error"]) == list(dumped("some_code", "A message.", **fields)["error"])
