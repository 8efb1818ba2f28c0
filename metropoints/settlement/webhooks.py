"""The payment provider's webhook endpoint: POST /api/v1/webhooks/payments, signed with Stripe-Signature."""

from __future__ import annotations

from flask import Blueprint, request
from pydantic import Field

from metropoints.core.openapi import api_operation
from metropoints.core.schemas import ReplyBody
from metropoints.settlement import operations
from metropoints.settlement.errors import BadSignature, StaleTimestamp, StatementNotReady

bp = Blueprint("settlement_webhooks", __name__, url_prefix="/api/v1/webhooks")


class PaymentEventReply(ReplyBody):
    """Received."""

    event_id: str = Field(description="The provider's event id.")
    outcome: str = Field(description="What the event did, e.g. `paid`, or `duplicate` for a replay.")


@bp.post("/payments")
@api_operation(replies={200: PaymentEventReply}, errors=(BadSignature, StaleTimestamp, StatementNotReady),
               tag="settlement",
               raw_body="The provider's event, as it signed it: read as raw bytes and parsed only once the "
                        "`Stripe-Signature` header checks.",
               description="The header is `t=<unix time>,v1=<HMAC-SHA256 of \"t.body\" with the webhook secret>`, "
                           "with a timestamp within PAYMENT_WEBHOOK_TOLERANCE_SECONDS of ours. Paid events "
                           "(`invoice.paid`, `invoice.payment_succeeded`, `payment_intent.succeeded`) mark the "
                           "invoice's statement "
                           "paid; failed ones mark it payment_failed (a paid statement stays paid). Each event id is "
                           "applied once: a replay answers `duplicate` and changes nothing; other events are recorded "
                           "as `ignored`.")
def payments():
    """The payment provider's webhook: verify the signature over the raw body, then record and apply the event
    once."""
    result = operations.receive_event(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    return PaymentEventReply(event_id=result.event_id, outcome=result.outcome)
