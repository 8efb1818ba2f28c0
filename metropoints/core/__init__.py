"""Core: app factory, configuration, database, identities and tokens, jobs, errors, i18n, CLI."""

from metropoints.core.app import create_app

__all__ = ["create_app"]
