"""Operator commands of the campaigns package."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Add this package's commands to the app."""
