"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

from metropoints.core import create_app

app = create_app()
