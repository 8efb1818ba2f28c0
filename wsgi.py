"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

from metropoints.app import create_app

app = create_app()
