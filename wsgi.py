"""WSGI entry point: `granian --interface wsgi wsgi:app` (any WSGI server), `flask --app wsgi ...`."""

from metropoints.app import create_app

app = create_app()
