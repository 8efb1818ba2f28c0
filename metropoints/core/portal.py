"""The portal's shell: role checks for pages and the navigation each package adds its entries to."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import abort, url_for
from flask_login import current_user, login_required

from metropoints.core.models import Role


@dataclass(frozen=True)
class NavItem:
    """A link in the portal's navigation, shown to the roles that may follow it."""

    endpoint: str
    label: Any  # a lazy string, translated when shown
    roles: frozenset[Role]
    order: int


_NAV: list[NavItem] = []


def add_nav(endpoint: str, label: Any, *roles: Role, order: int = 50) -> None:
    """Add a navigation entry (once per endpoint) for the given roles."""
    if all(item.endpoint != endpoint for item in _NAV):
        _NAV.append(NavItem(endpoint, label, frozenset(roles), order))
        _NAV.sort(key=lambda item: (item.order, item.endpoint))


def nav_for(user) -> list[tuple[str, Any]]:
    """(url, label) of the entries the user's role may see; none for anonymous visitors."""
    if not getattr(user, "is_authenticated", False):
        return []
    return [(url_for(item.endpoint), item.label) for item in _NAV if user.role in item.roles]


def role_required(*roles: Role) -> Callable:
    """A page for logged-in portal users of these roles only: others get 403, visitors the login page."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
