"""What portal sign-in shows: each role's home page, and why an account whose password matched cannot sign in.

Core knows no domain package, so the packages that own those pages and accounts register them here (as they add
their navigation entries in core.portal): `set_home(Role.cashier, "counter.page")`, `explain_inactive(function)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import url_for

from metropoints.core.models import Role, User

_HOMES: dict[Role, str] = {}
_EXPLAINERS: list[Callable[[User], Any]] = []


def set_home(role: Role, endpoint: str) -> None:
    """The page a user of `role` lands on after signing in (without a `next` page to go back to)."""
    _HOMES[role] = endpoint


def home_url(user: User) -> str:
    """The signed-in user's home page; the front page for a role nobody registered."""
    return url_for(_HOMES.get(user.role, "core.index"))


def explain_inactive(explainer: Callable[[User], Any]) -> Callable[[User], Any]:
    """Register a function that says (a translated text) why an inactive account may not sign in, or None when it
    does not know; usable as a decorator."""
    if explainer not in _EXPLAINERS:
        _EXPLAINERS.append(explainer)
    return explainer


def why_inactive(user: User) -> Any:
    """The first registered explanation for this inactive account, or None."""
    for explainer in _EXPLAINERS:
        reason = explainer(user)
        if reason:
            return reason
    return None
