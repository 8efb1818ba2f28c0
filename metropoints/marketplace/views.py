"""Merchant portal pages: application, stores, staff; the back office's merchant decisions."""

from __future__ import annotations

from flask import Blueprint

from metropoints.marketplace import models  # noqa: F401  (the tables, for the app and migrations)

bp = Blueprint("marketplace", __name__, url_prefix="/portal")
