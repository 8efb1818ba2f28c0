"""The OpenAPI 3.1 document of API v1, served at GET /api/v1/openapi.json.

Generated, never written: from the app's URL map and each view's `@api_operation` declaration, with the schemas of
`metropoints.riders_api.schemas` (see `metropoints.core.openapi`). Only its header is here: title, tags and the
bearer scheme. Each app builds its document once (the settings it names, like TRIPS_MAX_PER_CALL, are read then) and
every caller gets a copy of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Set
from typing import Any

from flask import Flask, current_app

from metropoints.core.models import TokenKind
from metropoints.core.openapi import build_document

PREFIX = "/api/v1"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
INFO = {
    "title": "MetroPoints API",
    "version": "1",
    "description": "Points for metro trips. JSON in and out, UTF-8; times are ISO 8601 with offset; points and money "
                   "are integers; distances are km with 3 decimals; CO2e is in grams. Errors are a 4xx status and "
                   '`{"error": {"code", "message", ...}}`; a body that does not fit its schema is a 422 `invalid` '
                   "whose `field` names the first field at fault and `fields` says what is wrong with each. Each "
                   "operation says which token kind it needs, in its description and in `x-token-kind` (null: none).",
}
TAGS = [{"name": "meta", "description": "About the API."},
        {"name": "riders", "description": "Rider accounts, trips and points."},
        {"name": "carbon", "description": "How points and CO2e are computed, per mode and rule version; public."},
        {"name": "partners", "description": "Trip feeds from metro account systems."},
        {"name": "catalogue", "description": "The live catalogue of benefits; public."},
        {"name": "redemption", "description": "Riders buy coupons with points, show and cancel them."},
        {"name": "counter", "description": "Merchant staff use coupons at the counter (POS)."},
        {"name": "kiosks", "description": "The feed of the station kiosks (one token per screen)."},
        {"name": "settlement", "description": "The payment provider's signed events about merchants' invoices."}]
SECURITY_SCHEME = {
    "type": "http", "scheme": "bearer",
    "description": "`Authorization: Bearer <token>`. Token kinds: `rider` (from /auth/register or /auth/token), "
                   "`partner` (trip feeds; `flask partners create`), `kiosk` (one per device, bound to a station; "
                   "`flask kiosks create`) and `staff` (merchant owner or cashier, for POS). An endpoint answers a "
                   "token of another kind with 403 `forbidden`.",
    "x-token-kinds": [kind.value for kind in TokenKind],
}
_EXTENSION = "metropoints.openapi"


def document_json(app: Flask) -> bytes:
    """The app's document as JSON, built on first use."""
    if _EXTENSION not in app.extensions:
        document = build_document(app, prefix=PREFIX, info=INFO, tags=TAGS, security_scheme=SECURITY_SCHEME)
        app.extensions[_EXTENSION] = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return app.extensions[_EXTENSION]


def openapi_document() -> dict[str, Any]:
    """The current app's OpenAPI 3.1 document: a fresh copy, safe to change."""
    return json.loads(document_json(current_app))


def documented_paths(document: dict[str, Any]) -> frozenset[str]:
    """The operations of `document` as "METHOD /api/v1/path" strings, e.g. "POST /api/v1/trips"."""
    prefix = document["servers"][0]["url"].rstrip("/")
    return frozenset(f"{method.upper()} {prefix}{path}" for path, item in document["paths"].items()
                     for method in item if method in HTTP_METHODS)


class _DocumentedPaths(Set):
    """The operations the current app's document lists, read when used (the document is the app's)."""

    def _paths(self) -> frozenset[str]:
        """This app's documented operations."""
        return documented_paths(openapi_document())

    def __contains__(self, operation: object) -> bool:
        """Whether the document lists this "METHOD /path"."""
        return operation in self._paths()

    def __iter__(self) -> Iterator[str]:
        """The documented operations."""
        return iter(self._paths())

    def __len__(self) -> int:
        """How many operations are documented."""
        return len(self._paths())


DOCUMENTED_PATHS: Set[str] = _DocumentedPaths()
