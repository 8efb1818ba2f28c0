"""URL converters shared by every blueprint, HTML and JSON alike."""

from __future__ import annotations

from flask import abort, request
from werkzeug.routing import IntegerConverter

from metropoints.core.db import MAX_ID


class IdConverter(IntegerConverter):
    """`<id:name>`: a row id in a path. An id that cannot exist (0, negative, beyond the INTEGER column's range, or
    more digits than any id has) does not match the rule, so it is a 404 before any query runs."""

    regex = r"\d{1,10}"

    def __init__(self, map, **kwargs) -> None:
        super().__init__(map, min=1, max=MAX_ID, **kwargs)


def id_arg(name: str) -> int | None:
    """A query-string id (`?before=123`): None when absent or empty; 404, as for a path id, when it is anything but
    an id that can exist."""
    raw = request.args.get(name, "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not 0 < int(raw) <= MAX_ID:
        abort(404)
    return int(raw)
