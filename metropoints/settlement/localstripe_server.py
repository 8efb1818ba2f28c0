"""The payment provider for local runs and tests: the `localstripe` server, on loopback, with Stripe's invoice
finalize endpoint added.

    python -m metropoints.settlement.localstripe_server [--port 8420] [--host 127.0.0.1]

localstripe 1.15 implements customers, invoice items, invoices, payments and signed webhooks, but two calls the
settlement client makes, and Stripe has, are missing: `POST /v1/invoices` only makes subscription invoices (a
one-off invoice of pending items gets "No upcoming invoices for customer"), and `POST /v1/invoices/{id}/finalize`
does not exist (localstripe issue #173). Both are added here with localstripe's own Invoice constructor and
Invoice._finalize, so the client runs unchanged against localstripe and Stripe. The store starts empty, lives in
memory only (localstripe would otherwise rewrite /tmp/localstripe.pickle on every change, shared by every run),
and the server listens on loopback.
"""

from __future__ import annotations

import argparse
import logging

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.resources import Invoice

_subscription_invoice = Invoice._api_create


def create_invoice(customer: object = None, subscription: object = None, description: object = None,
                   metadata: object = None, **options: object) -> Invoice:
    """Stripe's invoice creation: with a subscription as localstripe does it; without one, a one-off invoice of
    the customer's pending invoice items, keeping its metadata (Stripe options localstripe ignores are accepted)."""
    if subscription is not None:
        return _subscription_invoice(customer=customer, subscription=subscription, description=description,
                                     metadata=metadata)
    if metadata is not None and not isinstance(metadata, dict):
        raise UserError(400, "Bad request")
    return Invoice(customer=customer, description=description, metadata=metadata)


def finalize_invoice(id: str, auto_advance: object = None, **unused: object) -> Invoice:
    """Stripe's finalize: a draft invoice becomes open (it can be paid); finalizing a finalized one is a 400."""
    invoice = Invoice._api_retrieve(id)
    if invoice.status != "draft":
        raise UserError(400, "This invoice is already finalized.")
    invoice._finalize()
    return invoice


def build_app() -> web.Application:
    """localstripe's application with one-off invoices and the finalize route, its store in memory only."""
    resources.Store.dump_to_disk = lambda self: None
    Invoice._api_create = classmethod(lambda cls, **data: create_invoice(**data))
    server.app.router.add_route("POST", "/v1/invoices/{id}/finalize",
                                server.api_extra(finalize_invoice, "/v1/invoices/{id}/finalize"))
    return server.app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    web.run_app(build_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
