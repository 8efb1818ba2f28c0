"""A declined payment as the provider reports it: its reason read from the event, kept on the statement's
`last_error` as `[code] message` (the provider's decline code and its own words), and what the code means for the
merchant's owner, in the page's language.

Stripe puts the reason on the payment intent (`last_payment_error`: `decline_code`, `code`, `message`), on a charge
(`failure_code`, `failure_message`), and on an invoice only when its payment intent is expanded; an invoice event
names none, so the reason its paired payment intent event brought is kept (operations._apply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l

CODE = re.compile(r"[a-z0-9_]{1,60}", re.ASCII)
STORED = re.compile(r"\[([a-z0-9_]{1,60})\] ?(.*)", re.ASCII | re.DOTALL)
MAX_MESSAGE = 500

ISSUER_DECLINED = _l("The bank that issued the card declined the payment; it can tell you why.")
WRONG_CVC = _l("The card's security code (CVC) was wrong.")
WRONG_NUMBER = _l("The card number was wrong.")
NOT_AUTHENTICATED = _l("The bank's verification of the payment (for example a code sent to your phone) did not "
                       "complete.")
# Decline codes (Stripe's) and what they tell the owner; any other code reads as the issuer's refusal.
EXPLANATIONS = {
    "insufficient_funds": _l("The card does not have enough funds or credit left."),
    "expired_card": _l("The card has expired."),
    "incorrect_cvc": WRONG_CVC,
    "invalid_cvc": WRONG_CVC,
    "incorrect_number": WRONG_NUMBER,
    "invalid_number": WRONG_NUMBER,
    "processing_error": _l("The provider could not process the card; trying again in a little while may work."),
    "authentication_required": NOT_AUTHENTICATED,
    "payment_intent_authentication_failure": NOT_AUTHENTICATED,
}


@dataclass(frozen=True)
class Decline:
    """Why a payment failed, as the provider said it: its decline code and its message ("" when it gave none)."""

    code: str
    message: str

    def stored(self) -> str:
        """As kept on the statement's last_error: `[code] message`, or the message alone without a code."""
        return f"[{self.code}] {self.message}".strip() if self.code else self.message

    def explanation(self) -> str:
        """What the code means, in the current language; "" without a code."""
        return str(EXPLANATIONS.get(self.code, ISSUER_DECLINED)) if self.code else ""

    def reason(self) -> str:
        """The reason in the reader's language where the code tells it, else the provider's own words (which come
        in English)."""
        return self.explanation() or self.message


def decline_of(obj: dict[str, Any]) -> Decline | None:
    """The reason a failed-payment event's object gives (a payment intent, a charge, or an invoice with its payment
    intent expanded); None when it gives none. Values that are not strings, or codes that are not codes, are
    dropped: the event comes from outside."""
    error = obj.get("last_payment_error")
    intent = obj.get("payment_intent")
    if not isinstance(error, dict) and isinstance(intent, dict):
        error = intent.get("last_payment_error")
    if isinstance(error, dict):
        codes, message = (error.get("decline_code"), error.get("code")), error.get("message")
    else:
        codes, message = (obj.get("failure_code"),), obj.get("failure_message")
    code = next((c for c in codes if isinstance(c, str) and CODE.fullmatch(c)), "")
    message = message.strip()[:MAX_MESSAGE] if isinstance(message, str) else ""
    return Decline(code, message) if code or message else None


def read_decline(last_error: str) -> Decline | None:
    """The reason kept on a statement's last_error (see Decline.stored); None when none was kept."""
    if not last_error:
        return None
    match = STORED.fullmatch(last_error)
    return Decline(match[1], match[2].strip()) if match else Decline("", last_error)
