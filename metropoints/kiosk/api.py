"""The kiosk feed of API v1 (see the shared HTTP contract): GET /api/v1/kiosk/feed with a kiosk token."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from metropoints.core.api import require_token
from metropoints.core.db import db
from metropoints.core.errors import InvalidToken
from metropoints.core.models import Kiosk, TokenKind
from metropoints.kiosk.feed import feed_etag, kiosk_feed

bp = Blueprint("kiosk_api", __name__, url_prefix="/api/v1/kiosk")

# Kiosks revalidate on every poll; the feed is per kiosk, so no shared cache may keep it.
CACHE_CONTROL = "private, no-cache"


def current_kiosk() -> Kiosk:
    """The kiosk of this request's token."""
    kiosk = db.session.get(Kiosk, g.api_token.subject_id)
    if kiosk is None:
        raise InvalidToken()
    return kiosk


@bp.get("/feed")
@require_token(TokenKind.kiosk)
def feed():
    """The kiosk's station, its featured campaigns, the live catalogue and the city's figures, with an ETag;
    If-None-Match with the current ETag gets a 304 without a body."""
    content = kiosk_feed(current_kiosk())
    etag = feed_etag(content)
    unchanged = request.if_none_match.contains_weak(etag)
    response = Response(status=304) if unchanged else jsonify(content)
    # Weak: two replies with the same tag differ in `generated_at`, so they are equivalent, not byte-identical.
    response.set_etag(etag, weak=True)
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.vary.add("Authorization")
    return response
