"""CSV downloads: streamed a line at a time, UTF-8 with a BOM so spreadsheet programs read it as UTF-8."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from flask import Response, stream_with_context


def csv_line(values: Sequence[object]) -> str:
    """One CSV line."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def csv_download(filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Response:
    """The rows as a CSV attachment, streamed (rows may be a generator reading the database as it goes)."""

    def lines() -> Iterator[str]:
        yield "\ufeff" + csv_line(header)
        for row in rows:
            yield csv_line(row)

    return Response(stream_with_context(lines()), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename={filename}"})
