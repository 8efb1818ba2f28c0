"""JSON operations declared once: `@api_operation` validates a view's body and serializes its reply with pydantic
models, and `build_document` generates the OpenAPI 3.1 document from those declarations and the app's URL map.

A view declares its request body, its replies and the domain errors it may raise; the rest of its description comes
from what it already is: its rule (path and path parameters, from the converters), its docstring (summary and
description), `require_token` (token kind, 401/403) and `idempotent` (the Idempotency-Key header, 409), both of
which mark the view they wrap. Put `@api_operation` last, right above the function, so the body is read after the
token and the Idempotency-Key were checked, as it always was.

A body that does not fit its model is a 422 `invalid` with `field` (the first field at fault, as before) and `fields`
(each field at fault and why); a body that is not a JSON object stays a 400 `malformed_json` (`core.api.json_body`).
Generic only: the models themselves live with the interfaces that use them (`metropoints.riders_api.schemas`).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from flask import Flask, jsonify
from pydantic import BaseModel, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema
from werkzeug.routing import BaseConverter, Rule, UnicodeConverter
from werkzeug.routing.converters import NumberConverter

from metropoints.core.api import MAX_IDEMPOTENCY_KEY, NOT_READ, Error, json_body
from metropoints.core.errors import (
    DomainError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    InvalidToken,
    MalformedJson,
    NotFound,
    Unauthorized,
)
from metropoints.core.models import TokenKind
from metropoints.core.pages import DEFAULT_LIMIT, MAX_LIMIT

REF_TEMPLATE = "#/components/schemas/{model}"
ERROR_REF = {"$ref": REF_TEMPLATE.format(model="Error")}
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})


@dataclass(frozen=True)
class ErrorDoc:
    """An error reply that no DomainError class stands for (the rate limiter's 429, for one)."""

    http_status: int
    code: str
    description: str


RATE_LIMITED = ErrorDoc(429, "rate_limited", "Too many attempts from this address; wait and retry.")


@dataclass(frozen=True)
class Param:
    """A query, header or path parameter: its name, its type (its schema), what it means; `invalid` when a bad
    value is refused as a 422 `invalid`."""

    name: str
    type: Any
    description: str
    location: str = "query"
    required: bool = False
    default: Any = None
    invalid: bool = True


PAGE_QUERY = (
    Param("limit", Annotated[int, Field(ge=1, le=MAX_LIMIT)], "Items per page.", default=DEFAULT_LIMIT),
    Param("cursor", str, "The `next_cursor` of the previous page; omit it for the first page."),
)
# Documented on every view `core.api.idempotent` wraps.
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", Annotated[str, StringConstraints(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)],
    "A repeat with the same key and the same request returns the first reply (with "
    "`Idempotent-Replayed: true`) and changes nothing; the same key with another request is a 409 "
    "`idempotency_key_reused`. A refused request does not use up its key.", location="header")


@dataclass(frozen=True)
class Reply:
    """A success reply: a JSON body (a model), a body of another media type described in words, or none."""

    body: type[BaseModel] | None = None
    description: str = ""
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """What a view declares about its JSON: request body, success replies by status, errors, extra parameters."""

    body: type[BaseModel] | None
    replies: Mapping[int, Reply]
    errors: tuple[type[DomainError] | ErrorDoc, ...]
    params: tuple[Param, ...]
    token: TokenKind | None
    tag: str | None
    description: str
    invalid: type[DomainError]
    invalid_message: str | None
    check_text: bool
    raw_body: str | None

    def parse_body(self, parsed: Any = NOT_READ) -> BaseModel:
        """The request's body (or `parsed`, the JSON core.fastpath read) as the declared model; MalformedJson for a
        body that is not a JSON object, the declared refusal (InvalidInput with the fields at fault, unless told
        otherwise) for one that does not fit."""
        data = json_body(check_text=self.check_text, data=parsed)
        try:
            return self.body.model_validate(data)
        except ValidationError as error:
            if self.invalid is not InvalidInput:
                raise self.invalid(self.invalid_message) from None
            raise invalid_input(error) from None

    def respond(self, result: Any) -> Any:
        """A view's model as its JSON reply, with the status declared for that model; a Response the view made
        itself (another media type, cached bytes, a 304) goes out as it is."""
        if not isinstance(result, BaseModel):
            return result
        response = jsonify(result.model_dump(mode="json"))
        response.status_code = self.reply_status(result)
        return response

    def reply_status(self, result: BaseModel) -> int:
        """The status declared for a reply model; TypeError for a model the view does not declare."""
        for status, reply in self.replies.items():
            if reply.body is type(result):
                return status
        raise TypeError(f"The view returned a {type(result).__name__}, which it does not declare as a reply.")


def invalid_input(error: ValidationError) -> InvalidInput:
    """A body's validation errors as the contract's 422: `field` names the first field at fault, `fields` says
    what is wrong with each (never echoing the value given)."""
    fields: dict[str, str] = {}
    for problem in error.errors(include_url=False, include_input=False):
        fields.setdefault(str(problem["loc"][0]) if problem["loc"] else "body", problem["msg"])
    first = next(iter(fields))
    return InvalidInput("; ".join(f"{name}: {text}" for name, text in fields.items()), field=first, fields=fields)


def api_operation(*, replies: Mapping[int, type[BaseModel] | Reply], body: type[BaseModel] | None = None,
                  errors: tuple[type[DomainError] | ErrorDoc, ...] = (), params: tuple[Param, ...] = (),
                  token: TokenKind | None = None, tag: str | None = None, description: str = "",
                  invalid: type[DomainError] = InvalidInput, invalid_message: str | None = None,
                  check_text: bool = True, raw_body: str | None = None) -> Callable:
    """Declare a JSON view. `body`: the request body's model, validated and passed to the view as `body=`;
    `replies`: the model (or Reply) of each success status, the view returning a model instance; `errors`: the
    domain errors it raises beyond those its token, body, Idempotency-Key and path ids imply. `token` is for views
    that check their token without `require_token`; `invalid` (with `invalid_message`) replaces the 422 of a body
    that does not fit (a login refuses every such body as bad credentials); `check_text=False` lets through text no
    database stores, for an operation that checks it row by row; `raw_body` describes a body the view reads unparsed
    (signed bytes)."""
    operation = Operation(body=body, replies={status: r if isinstance(r, Reply) else Reply(r)
                                              for status, r in replies.items()},
                          errors=errors, params=params, token=token, tag=tag, description=description,
                          invalid=invalid, invalid_message=invalid_message, check_text=check_text, raw_body=raw_body)

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if operation.body is not None:
                kwargs["body"] = operation.parse_body()
            return operation.respond(view(*args, **kwargs))

        wrapped.api_operation = operation  # type: ignore[attr-defined]
        return wrapped

    return decorator


def _marks(view: Callable, name: str) -> Any:
    """An attribute a decorator left on a view or on any function it wraps (None if none did)."""
    while view is not None:
        if name in getattr(view, "__dict__", {}):
            return view.__dict__[name]
        view = getattr(view, "__wrapped__", None)
    return None


class _Generator(GenerateJsonSchema):
    """pydantic's JSON Schema without a title on every property (the names say it)."""

    def field_title_should_be_set(self, schema) -> bool:
        """Never: a property's name is its title."""
        return False


@dataclass
class _Schemas:
    """The types the document needs schemas of, each with its mode; their schemas come out in one pass, so every
    model is one component however many operations use it."""

    inputs: list[tuple[int, str, TypeAdapter]] = field(default_factory=list)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, type_: Any, mode: str) -> int:
        """Register a type; the returned key finds its schema after `generate`."""
        self.inputs.append((len(self.inputs), mode, TypeAdapter(type_)))
        return len(self.inputs) - 1

    def generate(self) -> dict[str, Any]:
        """Every registered schema (by key) and return the components they refer to."""
        found, definitions = TypeAdapter.json_schemas(self.inputs, ref_template=REF_TEMPLATE,
                                                      schema_generator=_Generator)
        self.results = {key: schema for (key, _), schema in found.items()}
        return definitions.get("$defs", {})


def _camel(name: str) -> str:
    """snake_case as camelCase, for operation ids."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _converter_schema(converter: BaseConverter) -> dict[str, Any]:
    """The schema of a path parameter, from its URL converter (an <id:...> is 1 to the largest id)."""
    if isinstance(converter, NumberConverter):
        schema: dict[str, Any] = {"type": "integer" if converter.num_convert is int else "number"}
        if converter.min is not None or not converter.signed:
            schema["minimum"] = converter.min if converter.min is not None else 0
        if converter.max is not None:
            schema["maximum"] = converter.max
        return schema
    schema = {"type": "string"}
    if isinstance(converter, UnicodeConverter):
        schema["pattern"] = f"^{converter.regex}$"
    return schema


def _error_codes(codes: list[tuple[int, str, str]]) -> dict[str, Any]:
    """The error responses, one per status, each listing its codes (`x-error-codes`) and what they mean."""
    by_status: dict[int, dict[str, str]] = {}
    for status, code, text in codes:
        by_status.setdefault(status, {}).setdefault(code, text)
    responses = {}
    for status in sorted(by_status):
        listed = by_status[status]
        only_codes = {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "code": {"type": "string", "enum": list(listed)}}}}}
        responses[str(status)] = {
            "description": " ".join(f"`{code}`: {text}" for code, text in listed.items()),
            "content": {"application/json": {"schema": {"allOf": [ERROR_REF, only_codes]}}},
            "x-error-codes": list(listed)}
    return responses


def _error_doc(error: type[DomainError] | ErrorDoc) -> tuple[int, str, str]:
    """(status, code, meaning) of a documented error: a DomainError class says it itself (its docstring)."""
    if isinstance(error, ErrorDoc):
        return error.http_status, error.code, error.description
    return error.http_status, error.code, inspect.cleandoc(error.__doc__ or error.default_message).split("\n")[0]


def _operations(app: Flask, prefix: str) -> Iterator[tuple[Rule, str, Callable, Operation]]:
    """Every (rule, method, view, declaration) under `prefix`; routes without a declaration are left out (and a
    test compares the document's operations with the URL map)."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(prefix + "/"):
            continue
        view = app.view_functions[rule.endpoint]
        operation = _marks(view, "api_operation")
        if operation is None:
            continue
        for method in sorted(rule.methods - IGNORED_METHODS):
            yield rule, method, view, operation


def build_document(app: Flask, *, prefix: str, info: dict[str, Any], tags: list[dict[str, str]],
                   security_scheme: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every declared operation under `prefix`, from the app's URL map, the views'
    declarations and the models' own JSON Schema (enums and limits included)."""
    schemas = _Schemas()
    error_key = schemas.add(Error, "serialization")
    pending = []
    for rule, method, view, operation in _operations(app, prefix):
        keys = {"body": schemas.add(operation.body, "validation") if operation.body else None,
                "replies": {status: schemas.add(reply.body, "serialization")
                            for status, reply in operation.replies.items() if reply.body is not None},
                "params": [(param, schemas.add(param.type, "validation")) for param in _params(view, operation)]}
        pending.append((rule, method, view, operation, keys))
    components = schemas.generate()
    assert schemas.results[error_key] == ERROR_REF, "the error model is a component of its own"
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for rule, method, view, operation, keys in pending:
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule[len(prefix):])
        item = _operation_object(rule, view, operation, keys, schemas.results)
        if item["operationId"] in operation_ids:
            raise ValueError(f"Two operations named {item['operationId']}: name the views apart.")
        operation_ids.add(item["operationId"])
        paths.setdefault(path, {})[method.lower()] = item
    return {"openapi": "3.1.0", "info": info, "servers": [{"url": prefix}], "tags": tags, "paths": paths,
            "components": {"securitySchemes": {"bearerAuth": security_scheme}, "schemas": components}}


def _operation_object(rule: Rule, view: Callable, operation: Operation, keys: dict[str, Any],
                      results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One operation of the document."""
    kinds = _marks(view, "api_token_kinds") or ((operation.token,) if operation.token else ())
    idempotent = bool(_marks(view, "api_idempotent"))
    errors: list[type[DomainError] | ErrorDoc] = []
    if operation.body is not None or operation.raw_body is not None:
        errors.append(MalformedJson)
    if operation.body is not None:
        errors.append(operation.invalid)
    if kinds:
        errors += [Unauthorized, InvalidToken, Forbidden]
    if idempotent:
        errors += [IdempotencyKeyReused, InvalidInput]
    if rule.arguments:
        errors.append(NotFound)
    if any(param.invalid for param in operation.params):
        errors.append(InvalidInput)
    errors += operation.errors

    docstring = inspect.cleandoc(view.__doc__ or "")
    summary = re.split(r"(?<=[.;:])\s", docstring, maxsplit=1)[0].rstrip(".;:")
    needs = (f"Needs a **{' or '.join(k.value for k in kinds)}** token (`Authorization: Bearer <token>`)."
             if kinds else "No token needed.")
    description = "\n\n".join(part for part in (docstring, operation.description, needs) if part)

    parameters = [{"name": name, "in": "path", "required": True, "schema": _converter_schema(converter)}
                  for name, converter in rule._converters.items()]  # werkzeug keeps a bound rule's converters here
    for param, key in keys["params"]:
        schema = dict(results[key])
        if param.default is not None:
            schema["default"] = param.default
        parameters.append({"name": param.name, "in": param.location, "required": param.required,
                           "description": param.description, "schema": schema})

    responses: dict[str, Any] = {}
    for status, reply in operation.replies.items():
        response: dict[str, Any] = {"description": reply.description or _first_line(reply.body) or "Done."}
        if reply.body is not None:
            response["content"] = {reply.media_type: {"schema": results[keys["replies"][status]]}}
        elif reply.media_type != "application/json":
            response["content"] = {reply.media_type: {"schema": {"type": "string"}}}
        if reply.headers:
            response["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                   for name, text in reply.headers.items()}
        responses[str(status)] = response
    responses |= _error_codes([_error_doc(error) for error in errors])

    item: dict[str, Any] = {"operationId": _camel(view.__name__), "summary": summary, "description": description,
                            "tags": [operation.tag or rule.endpoint.split(".")[0]],
                            "x-token-kind": kinds[0].value if len(kinds) == 1 else [k.value for k in kinds] or None,
                            "security": [{"bearerAuth": []}] if kinds else [], "responses": responses}
    if parameters:
        item["parameters"] = parameters
    if operation.body is not None:
        item["requestBody"] = {"required": True, "description": _first_line(operation.body),
                               "content": {"application/json": {"schema": results[keys["body"]]}}}
    elif operation.raw_body is not None:
        item["requestBody"] = {"required": True, "description": operation.raw_body,
                               "content": {"application/json": {"schema": {"type": "object"}}}}
    return item


def _params(view: Callable, operation: Operation) -> list[Param]:
    """The parameters a view declares, and the Idempotency-Key header when it honours one."""
    return [*operation.params, *([IDEMPOTENCY_KEY] if _marks(view, "api_idempotent") else [])]


def _first_line(model: type[BaseModel] | None) -> str:
    """The first line of a model's docstring."""
    return inspect.cleandoc(model.__doc__ or "").split("\n")[0] if model is not None else ""
