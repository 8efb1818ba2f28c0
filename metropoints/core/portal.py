"""The portal's shell: role checks for pages, the navigation each package adds its entries to, the logged-in user,
and how pages show a domain error (translated texts per blueprint, on a form field or as a flash message)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import abort, flash, has_request_context, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from metropoints.core.errors import DomainError
from metropoints.core.models import Role, User


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


def portal_user() -> User:
    """The logged-in portal user (the object itself, not the proxy)."""
    return current_user._get_current_object()


# {blueprint name: {error code: a (lazy) string, or a function of the error returning one}}. Per blueprint, because
# codes are shared between packages (`not_found`, `illegal_transition`): a package's texts replace the operations'
# own messages on its own pages only.
_ERROR_MESSAGES: dict[str, dict[str, Any]] = {}


def register_error_messages(blueprint: str, messages: Mapping[str, Any]) -> None:
    """Show these texts, by error code, for the domain errors the views of `blueprint` raise or catch."""
    _ERROR_MESSAGES.setdefault(blueprint, {}).update(messages)


def message_for(error: DomainError) -> str:
    """The text a page shows for a domain error: the current blueprint's registered one, else the error's message."""
    blueprint = request.blueprint if has_request_context() else None
    text = _ERROR_MESSAGES.get(blueprint or "", {}).get(error.code)
    if text is None:
        return str(error.message)
    return str(text(error) if callable(text) else text)


def put_on_form(form, error: DomainError, field_of: Mapping[str, str] | None = None) -> None:
    """Show a domain error on the form field it names (`field_of` maps a rule's field name to the form's where they
    differ), or as a flash message when it names none of the form's fields."""
    named = str(error.fields.get("field") or "")
    field = form._fields.get((field_of or {}).get(named, named)) if named else None
    if field is not None:
        field.errors = [*field.errors, message_for(error)]
    else:
        flash(message_for(error))


def form_page(template: str, form, **context):
    """Render a form page: 422 when a submitted form has errors, 200 otherwise."""
    failed = request.method == "POST" and any(field.errors for field in form)
    return render_template(template, form=form, **context), 422 if failed else 200


ROLE_LABELS = {Role.operator: _l("Metro business team"), Role.merchant_owner: _l("Merchant owner"),
               Role.cashier: _l("Cashier")}


def role_label(role: Role) -> str:
    """A role as people read it, in the page's language (never the raw code)."""
    return str(ROLE_LABELS.get(role, role))
