"""Building blocks of the API's JSON bodies (pydantic), shared by every package that declares one.

Requests are strict (5 is not "5", true is not 1) and ignore keys they do not know, as the operations always did; text
is stripped before it is checked, as the operations strip it. Replies always carry every field. Times go out as
`core.timeutil.isoformat` writes them: ISO 8601 in Asia/Shanghai, with its +08:00 offset. Limits come from the
columns (`width`), so a schema and its table cannot disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints, WithJsonSchema

from metropoints.core.db import MAX_ID
from metropoints.core.timeutil import isoformat

Timestamp = Annotated[datetime, PlainSerializer(isoformat, return_type=str),
                      WithJsonSchema({"type": "string", "format": "date-time"})]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def width(column: Any) -> int:
    """The length of a string column, e.g. width(Trip.trip_id) == 64."""
    return column.property.columns[0].type.length


def _strip(value: object) -> object:
    """Text stripped (str.strip, as the operations do) before it is checked; anything else as it came."""
    return value.strip() if isinstance(value, str) else value


def text(*, min_length: int | None = None, max_length: int | None = None, pattern: str | None = None) -> Any:
    """A string within limits, checked once stripped."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length, pattern=pattern),
                     BeforeValidator(_strip)]


class RequestBody(BaseModel):
    """A request body: strict JSON types, unknown keys ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class ReplyBody(BaseModel):
    """A reply body: every field is always there."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)
