"""The app as `wsgi.py` makes it, for tests that serve it under the production server (granian) in a process of its
own: each request Flask dispatches itself (not the hot endpoints' fast path) appends its path to the file named by
SERVED_FLASK_LOG, so a test can tell which way a request went."""

from __future__ import annotations

import os

from flask import request, request_started

from wsgi import app

_LOG = os.environ["SERVED_FLASK_LOG"]


def _note(sender, **extra) -> None:
    """One line per request Flask dispatched: its method and path."""
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{request.method} {request.path}\n")


request_started.connect(_note, app)
