"""Campaign pages: the merchant's editor and list, the back office's review queue and featuring."""

from __future__ import annotations

from flask import Blueprint

from metropoints.campaigns import models  # noqa: F401  (the tables, for the app and migrations)

bp = Blueprint("campaigns", __name__, url_prefix="/portal/campaigns")
