"""JSON API requests skip the page machinery they never use.

Every request used to pay for what only pages need: the session cookie opened (a signing serializer made) and
saved, Flask-Login's remember-me cookie check, Flask-WTF's CSRF hook (the API's blueprints are exempt anyway),
Talisman's nonce and HTTPS hooks and its policy strings built afresh for every reply, and Flask-Limiter's per-request
context (made and torn down even for a view it does not limit). Profiled on a flash sale, that was a sizeable part of
an attempt's CPU beside a view that needs none of it. So, for a request under API_PREFIX:
- no session: Flask's null session (readable as empty; the API authenticates with bearer tokens, never cookies);
- no CSRF, remember-me, nonce or force-HTTPS hook;
- the security headers of the API's views are the ones Talisman computed for the first such reply (they depend only
  on the view's options, the same for every API view, and on whether the request came over HTTPS, which keys them);
- on every path, Flask-Limiter's hooks run only for a view that carries a limit of its own (`limiter.limit`), as
  core.extensions' request filter already decided for the check itself.
Pages keep all of it as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response, current_app, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin

API_PREFIX = "/api/"


class ApiLessSessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session, but none for API requests (Flask then gives them its null session, never saved)."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        """None under API_PREFIX; the cookie session elsewhere."""
        if request.path.startswith(API_PREFIX):
            return None
        return super().open_session(app, request)


def _is_api() -> bool:
    """True for a request of the JSON API."""
    return request.path.startswith(API_PREFIX)


def _gate(func: Callable, skip: Callable[[], bool]) -> Callable:
    """`func` (a before-request, after-request or teardown hook) run only when `skip()` is false; when skipped, an
    after-request hook hands its response on and the others return None."""

    @functools.wraps(func)
    def gated(*args: Any) -> Any:
        if skip():
            return args[0] if args and isinstance(args[0], Response) else None
        return func(*args)

    gated.lean_gated = True  # type: ignore[attr-defined]
    return gated


def _owner(func: Callable) -> Any:
    """The extension object a hook belongs to: a bound method's instance, a partial's first argument."""
    if isinstance(func, functools.partial):
        return func.args[0] if func.args else None
    return getattr(func, "__self__", None)


def init_app(app: Flask, *, limiter: Any, login_manager: Any, limited: Callable[[], bool]) -> None:
    """Trim the hooks of `app` for API requests; call last in the factory, once every extension has its hooks.
    `limited()` says whether the request's view carries a limit of its own."""
    app.session_interface = ApiLessSessionInterface()
    talisman = app.extensions.get("talisman")

    def not_limited() -> bool:
        return not limited()

    def trim(funcs: list[Callable]) -> list[Callable]:
        trimmed = []
        for func in funcs:
            owner = _owner(func)
            name = getattr(func, "__qualname__", "")
            if getattr(func, "lean_gated", False):
                trimmed.append(func)
            elif owner is limiter:
                trimmed.append(_gate(func, not_limited))
            elif owner is login_manager or name.startswith("CSRFProtect.") or (
                    owner is talisman and func.__name__ in ("_force_https", "_make_nonce")):
                trimmed.append(_gate(func, _is_api))
            elif owner is talisman and func.__name__ == "_set_response_headers":
                trimmed.append(_api_headers_from_cache(func))
            else:
                trimmed.append(func)
        return trimmed

    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        if None in hooks:
            hooks[None] = trim(hooks[None])


def _api_headers_from_cache(set_headers: Callable[[Response], Response]) -> Callable[[Response], Response]:
    """Talisman's after-request hook, whose result for an API view is computed once (per HTTP / HTTPS) and copied
    onto later API replies; any other reply goes through Talisman as before."""
    cached: dict[tuple[int, bool], list[tuple[str, str]]] = {}

    @functools.wraps(set_headers)
    def headers(response: Response) -> Response:
        if not _is_api():
            return set_headers(response)
        view = current_app.view_functions.get(request.endpoint or "")
        options = getattr(view, "talisman_view_options", None)
        if options is None:  # an API path without a view (404, 405): Talisman's defaults, as before
            return set_headers(response)
        key = (id(options), request.is_secure or request.headers.get("X-Forwarded-Proto", "http") == "https")
        found = cached.get(key)
        if found is None:
            scratch = set_headers(Response())
            found = cached[key] = [(name, value) for name, value in scratch.headers.items()
                                   if name not in ("Content-Type", "Content-Length")]
        for name, value in found:
            response.headers[name] = value
        return response

    headers.lean_gated = True  # type: ignore[attr-defined]
    return headers
