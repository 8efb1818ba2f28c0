"""Typed domain errors. Operations raise them; one handler per interface turns them into a reply."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule said no. `code` is the machine-readable reason; `http_status` what the JSON API answers with."""

    code = "invalid"
    http_status = 422
    default_message = "The request is not valid."

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        """Keep a human message and any fields that help the caller (e.g. `used_at`)."""
        self.message = message or self.default_message
        self.fields = fields
        super().__init__(self.message)


class InvalidInput(DomainError):
    """Input that is missing, malformed or out of range."""


class NotFound(DomainError):
    """The thing does not exist, or is not visible to this caller (we do not say which)."""

    code = "not_found"
    http_status = 404
    default_message = "Not found."


class Unauthorized(DomainError):
    """No valid credentials."""

    code = "unauthorized"
    http_status = 401
    default_message = "A valid bearer token is required."


class Forbidden(DomainError):
    """Valid credentials that may not do this."""

    code = "forbidden"
    http_status = 403
    default_message = "Not allowed."


class Conflict(DomainError):
    """The request clashes with the current state."""

    code = "conflict"
    http_status = 409
    default_message = "Conflicts with the current state."


class MalformedJson(InvalidInput):
    """A body that is not the JSON object the endpoint takes."""

    code = "malformed_json"
    http_status = 400
    default_message = "The body must be a JSON object."


class InvalidToken(Unauthorized):
    """A bearer token that is unknown, expired or revoked."""

    code = "invalid_token"
    default_message = "The token is unknown, expired or revoked."


class IdempotencyKeyReused(Conflict):
    """The same Idempotency-Key with a different request."""

    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used for another request."
