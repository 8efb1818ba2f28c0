"""The payment provider for local runs and tests: the `localstripe` server, on loopback, with Stripe's invoice
finalize endpoint added.

    python devtools/localstripe_server.py [--port 8420] [--host 127.0.0.1]

localstripe 1.15 implements customers, invoice items, invoices, payments and signed webhooks, but two calls the
settlement client makes, and Stripe has, are missing: `POST /v1/invoices` only makes subscription invoices (a
one-off invoice of pending items gets "No upcoming invoices for customer"), and `POST /v1/invoices/{id}/finalize`
does not exist (localstripe issue #173). Both are added here with localstripe's own Invoice constructor and
Invoice._finalize, so the client runs unchanged against localstripe and Stripe. Like Stripe, a finalized invoice
gets a `hosted_invoice_url`: a page of this server where the merchant pays it with a test card (4242 4242 4242 4242
succeeds, 4000 0000 0000 0341 is declined), which sends the signed webhooks. The store starts empty and lives in
memory only (localstripe would otherwise rewrite /tmp/localstripe.pickle, shared by every run, on every change);
the server listens on loopback. With `--store FILE` the store is kept in that file instead (as `make run` does,
so invoices outlive a restart).
"""

from __future__ import annotations

import argparse
import html
import logging
import pickle

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.resources import Customer, Invoice, PaymentIntent, PaymentMethod

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


# Where this server is reached, for the hosted invoice pages' links (set by main()).
PUBLIC_URL = "http://127.0.0.1:8420"
TEST_CARDS = {"4242424242424242": "Pay with test card 4242 4242 4242 4242",
              "4000000000000341": "Try test card 4000 0000 0000 0341 (declined)"}


def finalize_invoice(id: str, auto_advance: object = None, **unused: object) -> Invoice:
    """Stripe's finalize: a draft invoice becomes open (it can be paid) with its hosted page; finalizing a
    finalized one is a 400."""
    invoice = Invoice._api_retrieve(id)
    if invoice.status != "draft":
        raise UserError(400, "This invoice is already finalized.")
    invoice._finalize()
    invoice.hosted_invoice_url = f"{PUBLIC_URL}/hosted/invoices/{id}"
    return invoice


async def hosted_invoice(request: web.Request) -> web.Response:
    """The invoice's payment page: amount, status, and a button per test card."""
    invoice = Invoice._api_retrieve(request.match_info["id"])
    buttons = "".join(f'<button name="card" value="{number}">{html.escape(label)}</button> '
                      for number, label in TEST_CARDS.items()) if invoice.status == "open" else ""
    body = (f"<!doctype html><meta charset=utf-8><title>Invoice {invoice.id}</title>"
            f"<h1>Invoice {html.escape(invoice.id)}</h1><p>{html.escape(invoice.description or '')}</p>"
            f"<p>Amount due: <strong>{invoice.total / 100:.2f} {invoice.currency.upper()}</strong></p>"
            f"<p>Status: <strong id=status>{invoice.status}</strong></p>"
            + ("<p id=declined>The card was declined.</p>" if request.query.get("declined") else "") +
            f'<form method=post action="/hosted/invoices/{invoice.id}/pay">{buttons}</form>')
    return web.Response(text=body, content_type="text/html")


async def pay_hosted_invoice(request: web.Request) -> web.Response:
    """Pay from the hosted page: the card becomes the customer's default payment method, then the invoice is paid
    (localstripe sends payment_intent.* and invoice.payment_* events to the registered webhooks)."""
    invoice = Invoice._api_retrieve(request.match_info["id"])
    card = (await request.post()).get("card")
    if card not in TEST_CARDS or invoice.status != "open":
        raise UserError(400, "Bad request")
    method = PaymentMethod(type="card", card={"number": card, "exp_month": "12", "exp_year": "2034", "cvc": "123"})
    PaymentMethod._api_attach(method.id, customer=invoice.customer)
    Customer._api_update(invoice.customer, invoice_settings={"default_payment_method": method.id})
    Invoice._api_pay_invoice(invoice.id)
    intent = PaymentIntent._api_retrieve(invoice.payment_intent)
    if intent.status == "requires_payment_method":
        # localstripe's pay endpoint drops a declined charge silently; Stripe reports it, and so do we here.
        intent._report_async_failure()
        raise web.HTTPSeeOther(f"/hosted/invoices/{invoice.id}?declined=1")
    raise web.HTTPSeeOther(f"/hosted/invoices/{invoice.id}")


@web.middleware
async def auth_unless_hosted_page(request: web.Request, handler):
    """localstripe's API-key check, except on the hosted invoice pages, which a browser opens by their link."""
    if request.path.startswith("/hosted/invoices/"):
        return await handler(request)
    return await server.auth_middleware(request, handler)


def keep_store(path: str | None) -> None:
    """Keep localstripe's store in `path` (loaded now, rewritten on every change), or in memory only."""
    if path is None:
        resources.Store.dump_to_disk = lambda self: None
        return

    def dump(store: resources.Store) -> None:
        with open(path, "wb") as file:
            pickle.dump(dict(store), file, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.dump_to_disk = dump
    try:
        with open(path, "rb") as file:
            dict.update(resources.store, pickle.load(file))
    except FileNotFoundError:
        pass


def build_app(store_path: str | None = None) -> web.Application:
    """localstripe's application with one-off invoices, the finalize route and hosted invoice pages."""
    keep_store(store_path)
    Invoice._api_create = classmethod(lambda cls, **data: create_invoice(**data))
    server.app.router.add_route("POST", "/v1/invoices/{id}/finalize",
                                server.api_extra(finalize_invoice, "/v1/invoices/{id}/finalize"))
    middlewares = server.app.middlewares
    middlewares[middlewares.index(server.auth_middleware)] = auth_unless_hosted_page
    server.app.router.add_get("/hosted/invoices/{id}", hosted_invoice)
    server.app.router.add_post("/hosted/invoices/{id}/pay", pay_hosted_invoice)
    return server.app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--store", help="Keep the provider's data in this file (default: in memory only).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    global PUBLIC_URL
    PUBLIC_URL = f"http://{args.host}:{args.port}"
    web.run_app(build_app(args.store), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
