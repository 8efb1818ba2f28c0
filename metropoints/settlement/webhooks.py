"""The payment provider's webhook endpoint: POST /api/v1/webhooks/payments, signed with Stripe-Signature."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from metropoints.settlement import operations

bp = Blueprint("settlement_webhooks", __name__, url_prefix="/api/v1/webhooks")


@bp.post("/payments")
def payments():
    """Verify the signature over the raw body, then record and apply the event once."""
    result = operations.receive_event(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    return jsonify(event_id=result.event_id, outcome=result.outcome)
