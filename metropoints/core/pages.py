"""Cursor pages of the JSON lists: `?limit=` and `?cursor=`, newest first, keyed on an id column (API.md, "Lists")."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select

from metropoints.core.db import db
from metropoints.core.errors import InvalidInput

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
MAX_KEYSET_ID = 2**63 - 1  # the largest BIGINT

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """A page of a list, newest first; a list endpoint declares its own (`class TripPage(Page[TripItem])`)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    items: list[Item]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def page_limit() -> int:
    """`?limit=`: default 20, at most 100."""
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    # str.isdigit() also accepts digits int() refuses ("²"), and int() refuses over 4300 digits: both are a 422.
    if not (raw.isascii() and raw.isdigit()) or len(raw.lstrip("0")) > 3 or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}.", field="limit")
    return int(raw)


def encode_cursor(value: int) -> str:
    """An opaque cursor for a keyset position."""
    return base64.urlsafe_b64encode(json.dumps([value]).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> int | None:
    """The keyset position a cursor stands for; 422 for a cursor we did not make."""
    if not raw:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        # Ours is always [id] with id a positive BIGINT; a bool is an int to Python but not to SQL.
        if not isinstance(decoded, list) or len(decoded) != 1 or type(decoded[0]) is not int \
                or not 0 < decoded[0] <= MAX_KEYSET_ID:
            raise ValueError
        return decoded[0]
    except (ValueError, TypeError, RecursionError):
        raise InvalidInput("That cursor is not one of ours.", field="cursor") from None


def keyset_page(query: Select, id_column, serialize: Callable[[Any], dict]) -> dict:
    """A newest-first page: {"items": [...], "next_cursor": ...}, ordered by `id_column` descending."""
    limit = page_limit()
    after = decode_cursor(request.args.get("cursor"))
    if after is not None:
        query = query.where(id_column < after)
    rows = db.session.execute(query.order_by(id_column.desc()).limit(limit + 1)).all()
    items = rows[:limit]
    next_cursor = encode_cursor(_row_id(items[-1])) if len(rows) > limit else None
    return {"items": [serialize(row) for row in items], "next_cursor": next_cursor}


def _row_id(row: Any) -> int:
    """The keyset id of a result row (its first column, or the entity's id)."""
    first = row[0]
    return first if isinstance(first, int) else first.id

