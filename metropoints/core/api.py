"""What every JSON endpoint shares: bearer tokens, error replies, Idempotency-Key replays (cursor pages: core.pages).

`require_token` and `idempotent` leave a mark on the view they wrap (`api_token_kinds`, `api_idempotent`), so the
OpenAPI document (metropoints.core.openapi) says what they check without being told twice."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import Response, g, jsonify, make_response, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Integer, String, text

from metropoints.core.db import (
    UTCDateTime,
    autocommit_row,
    db,
    driver_sql,
    is_postgres,
    primary_is_postgres,
    sql_param,
)
from metropoints.core.errors import (
    DomainError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidToken,
    MalformedJson,
    Unauthorized,
)
from metropoints.core.models import TokenKind
from metropoints.core.operations import TOKEN_USE_RESOLUTION, hash_token, touch_token
from metropoints.core.timeutil import isoformat, utcnow
from metropoints.core.token_cache import token_cache

MAX_IDEMPOTENCY_KEY = 255  # the column's width

class ErrorDetail(BaseModel):
    """The code and message, plus any fields that help (e.g. `field`, `fields`, `limit`, `used_at`)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Machine-readable reason, snake_case.")
    message: str = Field(description="Human-readable text.")
    field: str | None = Field(None, description="The field, parameter or header at fault (422 `invalid`).")
    fields: dict[str, str] | None = Field(None, description="Each field of the body at fault, and why.")


class Error(BaseModel):
    """Every 4xx reply."""

    error: ErrorDetail


# error_payload's plain dict: the detail's optional fields in the model's order, and the values JSON writes as they
# are (exact types: no enums, no subclasses).
_DETAIL_FIELDS = tuple(name for name in ErrorDetail.model_fields if name not in ("code", "message"))
_PLAIN = (str, int, bool, type(None))


def error_payload(code: str, message: str, /, **fields: Any) -> dict:
    """The contract's error body as data: {"error": {"code", "message", ...fields}}; any field name may be used."""
    if all(type(value) in _PLAIN for value in fields.values()):
        # Most replies (a sold-out attempt's has no field): the dict pydantic's dump below makes of them, in its key
        # order (the model's fields, then the others), without the models (7% of a sold-out reply's samples).
        detail = {"code": code, "message": message}
        detail.update((name, fields[name]) for name in _DETAIL_FIELDS if name in fields)
        detail.update((name, value) for name, value in fields.items() if name not in _DETAIL_FIELDS)
        return {"error": detail}
    # Built without validation: our own values, and an error reply must not fail itself.
    detail = ErrorDetail.model_construct(code=code, message=message, **fields)
    return Error.model_construct(error=detail).model_dump(mode="json", exclude_unset=True)


def error_reply(code: str, message: str, http_status: int, /, **fields: Any) -> Response:
    """The contract's error body: {"error": {"code", "message", ...fields}}; any field name may be used."""
    response = jsonify(error_payload(code, message, **fields))
    response.status_code = http_status
    return response


def domain_error_parts(error: DomainError) -> tuple[int, dict, list[tuple[str, str]]]:
    """What the JSON API answers a domain error with: (status, body, headers of its own). A time in its fields is
    written as every time of the API is (`timeutil.isoformat`: +08:00), a date as ISO 8601; a 429 with an `until`
    says how long to wait (Retry-After)."""
    fields = {k: (isoformat(v) if isinstance(v, datetime) else v.isoformat() if isinstance(v, date) else v)
              for k, v in error.fields.items()}
    headers = []
    until = error.fields.get("until")
    if error.http_status == 429 and isinstance(until, datetime):
        # RFC 9110: how long a client should wait, in whole seconds (at least one).
        headers.append(("Retry-After", str(max(1, math.ceil((until - utcnow()).total_seconds())))))
    return error.http_status, error_payload(error.code, error.message, **fields), headers


def domain_error_reply(error: DomainError) -> Response:
    """A domain error as the JSON API answers it (domain_error_parts)."""
    status, payload, headers = domain_error_parts(error)
    reply = jsonify(payload)
    reply.status_code = status
    for name, value in headers:
        reply.headers[name] = value
    return reply


@dataclass(frozen=True, slots=True)
class BearerToken:
    """The live token of a request: what kind of client holds it, and whose it is (a rider's, a partner's, ...)."""

    id: int
    kind: TokenKind
    subject_id: int


# Every API request runs this, so it is one indexed probe rather than an ORM load (the same liveness rule as
# core.operations.resolve_token: not revoked, not past its expiry). It reads revoked_at in the request's own
# statement, so a revocation committed before it refuses this very request. It also records the use, at most once a
# minute (core.operations.touch_token), in the same statement on PostgreSQL: the UPDATE matches the row only when
# the last use read with it is stale, and SKIP LOCKED leaves a row another request is writing alone, so a fresh
# token takes no lock and costs no write, and no request waits on another for its token. SQLite (development) sends
# the probe alone and the write, when stale, as a second statement.
_TOKEN_COLUMNS = {"id": Integer, "kind": String, "subject_id": Integer, "last_used_at": UTCDateTime,
                  "expires_at": UTCDateTime}
_LIVE = ("SELECT id, kind, subject_id, last_used_at, expires_at FROM api_tokens WHERE token_hash = :token_hash "
         "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now)")
_LIVE_TOKEN = text(_LIVE).columns(**_TOKEN_COLUMNS)
_LIVE_TOKEN_RECORDING_USE = text(
    f"WITH live AS ({_LIVE}), "
    "used AS (UPDATE api_tokens SET last_used_at = :now WHERE id = ("
    "SELECT token.id FROM api_tokens AS token JOIN live ON token.id = live.id "
    "WHERE live.last_used_at IS NULL OR live.last_used_at <= :stale FOR UPDATE OF token SKIP LOCKED)) "
    "SELECT id, kind, subject_id, last_used_at, expires_at FROM live").columns(**_TOKEN_COLUMNS)
_LIVE_TOKEN_RECORDING_USE_SQL = driver_sql(_LIVE_TOKEN_RECORDING_USE.element.text)  # as psycopg takes it
# The hot paths' probe runs alone in autocommit, so a first use's write would be a commit of its own, waiting for the
# disk: in a flash sale, whose riders each try once, that was one flush per attempt, sold-out replies included. A last
# use is a convenience reading (rounded to a minute anyway), so that transaction commits asynchronously
# (`synchronous_commit` off for it alone, set inside the statement: it ends with the statement's own transaction): a
# crash may lose the last second's last-use times, never anything else. Measured on this machine: a single-row
# autocommit UPDATE in 0.15 ms against 0.81 ms.
_LIVE_TOKEN_RECORDING_USE_ALONE_SQL = _LIVE_TOKEN_RECORDING_USE_SQL.replace(
    "expires_at FROM live", "expires_at, set_config('synchronous_commit', 'off', true) FROM live")


def bearer_value(authorization: str | None = None) -> str:
    """The raw token of an `Authorization: Bearer` header, this request's unless given (401 `unauthorized` without
    one)."""
    if authorization is None:
        authorization = request.headers.get("Authorization", "")
    scheme, _, raw = authorization.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise Unauthorized()
    return raw


def bearer_token(*, cached: bool = False, authorization: str | None = None) -> BearerToken:
    """The live token of an `Authorization: Bearer` header, this request's unless given (core.fastpath passes the
    header it read). `cached`: from this process's short-lived cache of live tokens when it has it
    (core.token_cache: a revoked token is refused within 5 seconds)."""
    raw = bearer_value(authorization)
    token_hash = hash_token(raw)
    cache = token_cache() if cached else None
    if cache is not None and (hit := cache.get(token_hash)) is not None:
        return hit
    now = utcnow()
    alone = cache is not None and primary_is_postgres()
    folded = alone or is_postgres()
    # The hot paths' probe opens no session (sql_param would): a sold-out reply then has none to make or remove.
    params = {"token_hash": token_hash, "now": now if alone else sql_param(now)}
    if folded:
        params["stale"] = now - TOKEN_USE_RESOLUTION
    if alone:
        # The hot paths probe in autocommit: a sold-out reply from its mark then costs this one round trip and no
        # transaction, and the use it records stays recorded even when the request is refused.
        row = autocommit_row(_LIVE_TOKEN_RECORDING_USE_ALONE_SQL, params)
    elif folded:
        # SQLAlchemy's execution, not core.db.hot_row: off the hot paths a request's statements stay visible to its
        # events (echo, logging, the tests that count a request's statements).
        row = db.session.connection().exec_driver_sql(_LIVE_TOKEN_RECORDING_USE_SQL, params).first()
    else:
        row = db.session.execute(_LIVE_TOKEN, params).first()
    if row is None:
        raise InvalidToken()
    touch_token(token_id=row.id, last_used_at=row.last_used_at, now=now, written=folded)
    token = BearerToken(id=row.id, kind=TokenKind(row.kind), subject_id=row.subject_id)
    if cache is not None:
        cache.put(token_hash, row.id, token, row.expires_at.timestamp() if row.expires_at is not None else None)
    return token


def check_token_kind(token: BearerToken, kinds: tuple[TokenKind, ...]) -> BearerToken:
    """The token, if it is of one of `kinds`; 403 `forbidden` otherwise."""
    if token.kind not in kinds:
        raise Forbidden(f"This needs a {' or '.join(k.value for k in kinds)} token.")
    return token


def require_token(*kinds: TokenKind, cached: bool = False,
                  before_token: Callable[[BaseModel], None] | None = None) -> Callable:
    """Let through only requests bearing a live token of one of `kinds`; the token is in `g.api_token`. `cached`
    (the hot paths only): the token may come from the process's cache of live tokens, so a revocation reaches this
    view up to core.token_cache.MAX_TOKEN_CACHE_SECONDS later in other processes.

    `before_token` (a view with a body, declared by `api_operation` under this decorator): a check of the parsed body
    that may refuse the request before its token is looked up, for a refusal that says only what is public anyway
    and would otherwise cost the lookup's round trip alone (a flash sale's sold-out replies: answer_before_token)."""

    def decorator(view: Callable) -> Callable:
        operation = view.__dict__.get("api_operation")
        if before_token is not None and (operation is None or operation.body is None):
            raise TypeError("before_token needs a view whose api_operation declares a body")
        replays = bool(view.__dict__.get("api_idempotent"))

        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if before_token is not None and not (replays and request.headers.get("Idempotency-Key")):
                answer_before_token(before_token, operation)
            g.api_token = check_token_kind(bearer_token(cached=cached), kinds)
            return view(*args, **kwargs)

        wrapped.api_token_kinds = kinds  # type: ignore[attr-defined]
        wrapped.api_token_cached = cached  # type: ignore[attr-defined]
        wrapped.api_before_token = before_token  # type: ignore[attr-defined]
        return wrapped

    return decorator


# json_body's `data` when the body is still to be read from the request.
NOT_READ: Any = object()


def json_body(*, check_text: bool = True, data: Any = NOT_READ) -> dict:
    """The request's JSON object (or `data`, a body core.fastpath parsed itself); a 400 `malformed_json` for anything
    else, including JSON nested too deep to parse and (unless the caller checks row by row) text the database cannot
    store."""
    if data is NOT_READ:
        try:
            data = request.get_json(silent=True)
        except RecursionError:
            data = None
    if not isinstance(data, dict):
        raise MalformedJson()
    if check_text and not storable_text(data):
        raise MalformedJson("The body's text must be UTF-8 without NUL characters.")
    return data


def answer_before_token(check: Callable[[BaseModel], None], operation: Any, parsed: Any = NOT_READ,
                        authorization: str | None = None) -> BaseModel | None:
    """Run a view's `before_token` check (require_token): the request's body as its operation parses it (or from
    `parsed`, the JSON core.fastpath read), or None when it does not parse (the body's refusal then comes after the
    token's, as always). A request without a bearer token is refused first (401, as ever); a request with one, of
    whatever token, may be refused here by `check` (a DomainError) before the token is looked up. Not for a request
    whose Idempotency-Key may replay an earlier reply: the replay comes first."""
    bearer_value(authorization)
    try:
        body = operation.parse_body(parsed)
    except DomainError:
        return None
    check(body)
    return body


def storable_text(value: Any) -> bool:
    """True when every string (key or value) in parsed JSON is text a database column can hold.

    Valid JSON can still carry, through `\\u` escapes, NUL characters (PostgreSQL refuses them) and lone UTF-16
    surrogates (no UTF-8 encoding exists): both would otherwise fail deep in an operation as a 500.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode()
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


# The key row is claimed with RETURNING, so a first request needs no read of it; only a repeat reads it back.
_CLAIM_KEY = text("INSERT INTO idempotency_records (scope, key, request_hash, created_at) "
                  "VALUES (:scope, :key, :hash, :now) ON CONFLICT (scope, key) DO NOTHING RETURNING id")
_KEY_RECORD = text("SELECT request_hash, status_code, body FROM idempotency_records "
                   "WHERE scope = :scope AND key = :key")
_STORE_REPLY = text("UPDATE idempotency_records SET status_code = :status, body = :body WHERE id = :id")


def idempotent(view: Callable) -> Callable:
    """Honour `Idempotency-Key`: the first successful reply is stored and a repeat gets it back, changing nothing.

    The key row is written first, in the same transaction as the work, so a concurrent repeat waits on it and then
    replays. A refused request (4xx) is rolled back with its key, so it may be retried with the same key.
    """

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return view(*args, **kwargs)
        if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():  # a NUL would fail the INSERT below as a 500
            raise InvalidInput(f"Idempotency-Key has at most {MAX_IDEMPOTENCY_KEY} printable characters.",
                               field="Idempotency-Key")
        token: BearerToken = g.api_token
        scope = f"{token.kind.value}:{token.subject_id}"
        digest = hashlib.sha256(request.method.encode() + request.path.encode() + b"\n"
                                + request.get_data()).hexdigest()
        record_id = db.session.execute(_CLAIM_KEY, {"scope": scope, "key": key, "hash": digest,
                                                    "now": sql_param(utcnow())}).scalar()
        if record_id is None:  # the key's first request committed (a concurrent one waited on its row): replay it
            request_hash, status_code, body = db.session.execute(_KEY_RECORD, {"scope": scope, "key": key}).one()
            if request_hash != digest:
                raise IdempotencyKeyReused()
            response = Response(body, status=status_code, mimetype="application/json")
            response.headers["Idempotent-Replayed"] = "true"
            return response
        response = view(*args, **kwargs)
        response = response if isinstance(response, Response) else _make_response(response)
        if response.status_code < 400:
            db.session.execute(_STORE_REPLY, {"id": record_id, "status": response.status_code,
                                              "body": response.get_data(as_text=True)})
        return response

    wrapped.api_idempotent = True  # type: ignore[attr-defined]
    return wrapped


def _make_response(value: Any) -> Response:
    """A view's return value as a Response."""
    return make_response(value)
