"""Settlement's refusals, each with its reason code."""

from __future__ import annotations

from metropoints.core.errors import Conflict, InvalidInput, Unauthorized


class InvalidPeriod(InvalidInput):
    """A period that is not a month written YYYY-MM."""

    code = "invalid_period"
    default_message = "A period is a month written YYYY-MM."


class PeriodNotEnded(Conflict):
    """Statements are made for months that have ended."""

    code = "period_not_ended"
    default_message = "This month has not ended yet."


class PeriodSuperseded(Conflict):
    """A later month already has statements: its run billed this month's coupons."""

    code = "period_superseded"
    default_message = "A later month has statements already; its run billed this month's used coupons."


class InvalidFee(InvalidInput):
    """A fee that is not a whole, non-negative number of fen within bounds."""

    code = "invalid_fee"
    default_message = "Fees are whole numbers of fen, from 0 to 10,000,000."


class BadSignature(Unauthorized):
    """A webhook whose Stripe-Signature header is missing or does not match the payload."""

    code = "bad_signature"
    http_status = 400
    default_message = "The Stripe-Signature header does not match the payload."


class StaleTimestamp(Unauthorized):
    """A signed webhook whose timestamp is outside the tolerance: a replay of an old delivery, or a bad clock."""

    code = "stale_timestamp"
    http_status = 400
    default_message = "The signature's timestamp is outside the tolerance."


class StatementNotReady(Conflict):
    """An event for one of our invoices whose statement has not recorded it yet; the provider redelivers later."""

    code = "statement_not_ready"
    default_message = "The statement of this invoice is still being issued; deliver the event again later."
