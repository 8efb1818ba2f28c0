"""A fast path for the hot JSON endpoints (a flash sale's redemptions, the counter's validations): the same view,
the same checks, the same reply, without Flask's request machinery.

A request through Flask builds a Werkzeug request and response, pushes a request context, matches the URL map, runs
the before- and after-request hooks (even trimmed by core.lean they are a call each) and the error handler's
lookup. Profiled on a flash sale that was about a fifth of a worker's samples beside a view that needs none of it.
For the endpoints named at install, a POST to the rule's exact path that takes the common shape goes this way
instead, inside an app context only:
- the token as `require_token` checks it (core.api.bearer_token / check_token_kind, the view's kinds and cache
  setting), in `g.api_token`, after the view's `before_token` check when it has one (core.api.answer_before_token);
- the body as `api_operation` parses it (its Operation.parse_body on the JSON read here, which must be
  `application/json` with a Content-Length: anything else goes to Flask);
- the view's own function (the one its decorators wrap), its reply model serialized as `api_operation` does, with
  the status it declares;
- the unit of work as the app ends it: committed below 400, rolled back on a domain error (core.db, whose hooks
  write what waits for the end: queued jobs, the counter's unknown codes, sold-out marks), keeping the statements
  psycopg prepared on its connection (a refusal does not make the next requests plan theirs afresh);
- the reply's bytes as Flask's JSON provider writes them, and its headers those of a Flask reply of the same
  endpoint (the security headers and Cache-Control: no-store), learned at install from the after-request hooks
  run on a reply to an unauthenticated request (HTTP and HTTPS apart), so they cannot drift from the app's.
A request with an Idempotency-Key (an idempotent view), chunked or without Content-Length, of another media type or
longer than MAX_FAST_BODY goes to Flask unchanged, as does every other method and path; so does an unexpected
exception's reply (Flask's handler makes the 500 and logs it). FAST_PATH (default on) turns it off.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from flask import Flask, g
from pydantic import BaseModel
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.test import EnvironBuilder

from metropoints.core.api import (
    answer_before_token,
    bearer_token,
    check_token_kind,
    domain_error_parts,
    domain_error_reply,
)
from metropoints.core.db import commit_unit_of_work, rollback_unit_of_work
from metropoints.core.errors import DomainError, Unauthorized
from metropoints.core.extensions import LIMITED_VIEW_MARK
from metropoints.core.openapi import Operation

MAX_FAST_BODY = 8192  # bytes; a longer body (none of the hot endpoints takes one) goes to Flask
_JSON_TYPE = re.compile(r"application/json\s*(;.*)?", re.IGNORECASE | re.DOTALL)
_OWN_HEADERS = frozenset({"content-type", "content-length"})
_STATUS_LINES = {code: f"{code} {name.upper()}" for code, name in HTTP_STATUS_CODES.items()}  # as Werkzeug writes them
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class FastRoute:
    """One endpoint served by the fast path: what its decorators declared, and the function they wrap."""

    endpoint: str
    path: str
    kinds: tuple
    cached: bool
    idempotent: bool
    operation: Operation
    view: Callable[..., BaseModel]
    before_token: Callable[[BaseModel], None] | None = None


def fast_route(app: Flask, endpoint: str) -> FastRoute:
    """The fast path's reading of a view: a POST rule without path parameters, `require_token` outermost, then
    `idempotent` (optional), then `api_operation` with a body, and nothing else around the function (no rate limit,
    no other wrapper); ValueError for a view of another shape, so nothing it does is ever skipped."""
    view = app.view_functions[endpoint]
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint]
    if len(rules) != 1 or rules[0].arguments or "POST" not in (rules[0].methods or ()):
        raise ValueError(f"{endpoint}: the fast path takes one POST rule without path parameters")
    if getattr(view, LIMITED_VIEW_MARK, None) is not None:
        raise ValueError(f"{endpoint}: a rate-limited view is not for the fast path")
    kinds = view.__dict__.get("api_token_kinds")
    operation = view.__dict__.get("api_operation")
    idempotent = bool(view.__dict__.get("api_idempotent"))
    if not kinds or not isinstance(operation, Operation) or operation.body is None:
        raise ValueError(f"{endpoint}: the fast path takes a view with require_token and api_operation(body=...)")
    inner = view
    for _ in range(3 if idempotent else 2):  # require_token's wrapper, idempotent's, api_operation's
        inner = getattr(inner, "__wrapped__", None)
        if inner is None:
            raise ValueError(f"{endpoint}: a decorator the fast path does not know wraps the view")
    if hasattr(inner, "__wrapped__"):
        raise ValueError(f"{endpoint}: a decorator the fast path does not know wraps the view")
    return FastRoute(endpoint=endpoint, path=rules[0].rule, kinds=tuple(kinds),
                     cached=bool(view.__dict__.get("api_token_cached")), idempotent=idempotent, operation=operation,
                     view=inner, before_token=view.__dict__.get("api_before_token"))


class FastPath:
    """WSGI middleware in front of Flask's own `wsgi_app`: the fast routes' common requests here, the rest there."""

    def __init__(self, app: Flask, wsgi_app: Callable, routes: Iterable[FastRoute]) -> None:
        """Serve `routes` of `app`; `wsgi_app` is Flask's (everything else, and the fast routes' uncommon shapes)."""
        self.app, self.wsgi_app = app, wsgi_app
        self.routes = {route.path: route for route in routes}
        self._headers = {(route.endpoint, secure): self._learn_headers(route, secure)
                         for route in self.routes.values() for secure in (False, True)}

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a fast route's request here when it takes the common shape; hand anything else to Flask."""
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is None or environ.get("REQUEST_METHOD") != "POST" or not self.app.config.get("FAST_PATH", True):
            return self.wsgi_app(environ, start_response)
        body = self._body(route, environ)
        if body is None:
            return self.wsgi_app(environ, start_response)
        secure = environ.get("wsgi.url_scheme") == "https" or environ.get("HTTP_X_FORWARDED_PROTO", "http") == "https"
        headers = self._headers[route.endpoint, secure]
        answered = self._answer(route, environ, body)
        if isinstance(answered, Exception):  # an unexpected error: Flask's handler replies (a 500), as it would have
            return self._server_error(answered, environ, start_response)
        status, data, own = answered
        start_response(_STATUS_LINES.get(status) or f"{status} UNKNOWN",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *own, *headers])
        return [data]

    def _body(self, route: FastRoute, environ: dict) -> bytes | None:
        """The request's body when the request takes the fast path's shape, else None (read bytes put back)."""
        if route.idempotent and "HTTP_IDEMPOTENCY_KEY" in environ:
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if ("HTTP_TRANSFER_ENCODING" in environ or not (length.isascii() and length.isdigit())
                or int(length) > MAX_FAST_BODY or not _JSON_TYPE.fullmatch(environ.get("CONTENT_TYPE", ""))):
            return None
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if limit is not None and int(length) > limit:
            return None
        data = environ["wsgi.input"].read(int(length))
        if len(data) != int(length):  # the client went away mid-body: Flask says so as it always has
            environ["wsgi.input"] = BytesIO(data)
            return None
        return data

    def _answer(self, route: FastRoute, environ: dict, body: bytes) -> tuple[int, bytes, list] | Exception:
        """(status, JSON bytes, the reply's own headers) of one request, its unit of work ended; an unexpected
        exception is returned instead (its unit of work rolled back)."""
        with self.app.app_context():
            try:
                authorization = environ.get("HTTP_AUTHORIZATION", "")
                try:
                    parsed = self.app.json.loads(body)
                except (ValueError, RecursionError):
                    parsed = None  # not JSON: parse_body refuses it (400 malformed_json), after the token's check
                checked = (None if route.before_token is None
                           else answer_before_token(route.before_token, route.operation, parsed, authorization))
                g.api_token = check_token_kind(bearer_token(cached=route.cached, authorization=authorization),
                                               route.kinds)
                result = route.view(body=checked if checked is not None else route.operation.parse_body(parsed))
                status, payload, own = route.operation.reply_status(result), result.model_dump(mode="json"), []
                data = self._json(payload)
                commit_unit_of_work()
            except DomainError as error:
                rollback_unit_of_work(keep_prepared=True)  # the hot endpoints' units of work change no schema
                status, payload, own = domain_error_parts(error)
                data = self._json(payload)
            except Exception as error:  # handed to Flask's own handling by the caller
                rollback_unit_of_work()
                return error
        return status, data, own

    def _json(self, payload: Any) -> bytes:
        """The bytes Flask's JSON provider writes for `payload` (its jsonify): compact unless debugging, a newline."""
        provider = self.app.json
        compact = getattr(provider, "compact", None)
        if (compact is None and self.app.debug) or compact is False:
            text = provider.dumps(payload, indent=2, separators=(", ", ": "))
        else:
            text = provider.dumps(payload, separators=(",", ":"))
        return f"{text}\n".encode()

    def _learn_headers(self, route: FastRoute, secure: bool) -> list[tuple[str, str]]:
        """The headers Flask puts on this endpoint's JSON replies beside Content-Type and Content-Length: those of
        the reply it makes to an unauthenticated request (401, no database work), its after-request hooks run in a
        request context of the endpoint's path, as a dispatched request's are (none dispatched: the app takes no
        request before it is served)."""
        environ = EnvironBuilder(path=route.path, method="POST",
                                 base_url="https://localhost" if secure else "http://localhost").get_environ()
        with self.app.request_context(environ):
            reply = self.app.process_response(domain_error_reply(Unauthorized()))
        return [(name, value) for name, value in reply.headers.to_wsgi_list() if name.lower() not in _OWN_HEADERS]

    def _server_error(self, error: Exception, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        """Flask's reply to an exception `_answer` met (its handler logs it; under test it propagates)."""
        with self.app.request_context(environ):
            try:
                raise error
            except Exception as raised:  # re-raised so Flask's handler sees it as the exception being handled
                response = self.app.handle_exception(raised)
            return response(environ, start_response)


def init_app(app: Flask, endpoints: Iterable[str]) -> None:
    """Put the fast path in front of the app for `endpoints` (call once every blueprint and hook is in)."""
    app.wsgi_app = FastPath(app, app.wsgi_app, [fast_route(app, endpoint) for endpoint in endpoints])  # type: ignore[method-assign]
