"""The payment provider's HTTP API (Stripe's, or localstripe's locally), called with `requests`.

Every call that creates something carries an Idempotency-Key derived from our own ids, so a retried call returns
the first result at the provider. Providers that ignore the header (localstripe) are covered by the invoicing
steps, which look for what an earlier attempt made before making it again (see invoicing.invoice_statement).
Errors are sorted into those worth retrying (no connection, timeout, 429, 5xx) and those that are not (other 4xx).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from flask import current_app

# Stripe's list pages hold at most 100 objects.
PAGE_SIZE = 100


class ProviderError(Exception):
    """The provider call failed; `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


def form_fields(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding of nested parameters: {"metadata": {"a": 1}} -> [("metadata[a]", "1")]."""
    fields: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, dict):
            fields.extend(form_fields(value, name))
        elif isinstance(value, bool):
            fields.append((name, "true" if value else "false"))
        elif value is not None:
            fields.append((name, str(value)))
    return fields


@dataclass
class PaymentProvider:
    """A client for one provider account."""

    base_url: str
    api_key: str
    timeout: float = 10.0
    api_version: str | None = None

    @classmethod
    def from_config(cls) -> PaymentProvider:
        """The provider the app is configured for."""
        config = current_app.config
        return cls(config["PAYMENT_API_BASE"].rstrip("/"), config["PAYMENT_API_KEY"],
                   float(config["PAYMENT_TIMEOUT_SECONDS"]), config.get("PAYMENT_API_VERSION"))

    def request(self, method: str, path: str, *, data: dict[str, Any] | None = None,
                params: dict[str, Any] | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        """One API call; the decoded JSON object, or ProviderError."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if self.api_version:
            headers["Stripe-Version"] = self.api_version
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=self.timeout,
                                        data=form_fields(data or {}), params=form_fields(params or {}))
        except (requests.ConnectionError, requests.Timeout) as error:
            raise ProviderError(f"{method} {path}: {type(error).__name__}", retryable=True) from error
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if status >= 400 or not isinstance(body, dict):
            message = body.get("error", {}).get("message", "") if isinstance(body, dict) else ""
            raise ProviderError(f"{method} {path}: HTTP {status} {message or response.text[:200]}".strip(),
                                retryable=status == 429 or status >= 500 or not isinstance(body, dict),
                                status=status)
        return body

    def list_all(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every object of a list endpoint, page after page."""
        objects: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self.request("GET", path, params={**params, "limit": PAGE_SIZE, "starting_after": after})
            data = page.get("data", [])
            objects.extend(data)
            if not page.get("has_more") or not data:
                return objects
            after = data[-1]["id"]

    # The calls settlement makes.

    def create_customer(self, *, name: str, metadata: dict[str, str], key: str) -> dict[str, Any]:
        return self.request("POST", "/v1/customers", data={"name": name, "metadata": metadata}, idempotency_key=key)

    def pending_invoice_items(self, customer: str) -> list[dict[str, Any]]:
        """The customer's invoice items on no invoice yet."""
        return [item for item in self.list_all("/v1/invoiceitems", {"customer": customer})
                if not item.get("invoice")]

    def create_invoice_item(self, *, customer: str, amount: int, currency: str, description: str,
                            metadata: dict[str, str], key: str) -> dict[str, Any]:
        return self.request("POST", "/v1/invoiceitems", idempotency_key=key,
                            data={"customer": customer, "amount": amount, "currency": currency,
                                  "description": description, "metadata": metadata})

    def invoices_of(self, customer: str) -> list[dict[str, Any]]:
        return self.list_all("/v1/invoices", {"customer": customer})

    def create_invoice(self, *, customer: str, description: str, metadata: dict[str, str],
                       key: str) -> dict[str, Any]:
        return self.request("POST", "/v1/invoices", idempotency_key=key,
                            data={"customer": customer, "description": description, "metadata": metadata})

    def finalize_invoice(self, invoice_id: str, *, key: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/invoices/{invoice_id}/finalize", idempotency_key=key)

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/invoices/{invoice_id}")
