"""Errors raised by accrual operations."""

from __future__ import annotations

from metropoints.core.errors import Conflict, DomainError, InvalidInput


class RefLinkedElsewhere(Conflict):
    """The account reference belongs to another rider."""

    code = "ref_linked_elsewhere"
    default_message = "This account reference is linked to another rider."


class InsufficientPoints(Conflict):
    """A debit larger than the balance."""

    code = "insufficient_points"
    default_message = "Not enough points."


class TooManyTrips(DomainError):
    """More trips in one call than the feed accepts."""

    code = "too_many_trips"
    http_status = 413
    default_message = "Too many trips in one call."


class BadRule(InvalidInput):
    """An accrual rule version that cannot be used."""

    code = "bad_rule"


class BadBusLine(InvalidInput):
    """A bus line that cannot be set so."""

    code = "bad_bus_line"


class NotUnderReview(Conflict):
    """A review decision about a trip that is not (or no longer) held for review."""

    code = "not_under_review"
    default_message = "This trip is not held for review."
