"""Coupon codes, counter codes and their QR images.

A code is `<random part>.<signature>`: 16 random bytes in base32 (26 characters, no padding), a dot, and the first
10 bytes of HMAC-SHA256 over the random part under a key derived from SECRET_KEY (16 characters). The random part
cannot be guessed (128 bits); the signature cannot be forged without the key, so a counter refuses a made-up or
altered code before it looks at a single coupon row. Upper-case base32 and the dot are all in the QR alphanumeric
set, so the QR stays small and any scanner reads it.

A counter code is what a cashier types when the QR cannot be scanned: 12 digits, shown 4-4-4, 11 random ones
(`secrets`) and a Damm check digit. Damm catches every single-digit error and every adjacent transposition (Luhn
misses 09 <-> 90), so a mistyped code is refused here, before any coupon row is read. It is short enough to type, so
it is not unguessable on its own: it is unique only among issued coupons (a partial unique index), and the counter
refuses a store that keeps sending unknown codes (redemption.counter). Spaces and dashes are ignored, and the
full-width digits of a Chinese input method read as digits (NFKC).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import secrets
import unicodedata

import segno
from flask import current_app

RANDOM_BYTES, SIGNATURE_BYTES = 16, 10
CODE_RE = re.compile(r"^([A-Z2-7]{26})\.([A-Z2-7]{16})$")
MAX_CODE_LENGTH = 64  # the column's width; anything longer is refused unread
_KEY_PURPOSE = b"metropoints/coupon-code/v1"

COUNTER_CODE_LENGTH = 12  # the column's width: 11 random digits and the check digit
_RANDOM_DIGITS = COUNTER_CODE_LENGTH - 1
COUNTER_CODE_RE = re.compile(r"^[0-9]{12}$")
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212]+")  # spaces and every kind of dash a keyboard or IME types
# The Damm algorithm's quasigroup of order 10 (weakly totally anti-symmetric): a check digit over it catches every
# single-digit error and every transposition of two adjacent digits.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def _b32(raw: bytes) -> str:
    """Base32 without padding."""
    return base64.b32encode(raw).decode().rstrip("=")


def _signing_key() -> bytes:
    """A key for coupon codes only, derived from SECRET_KEY (so a signature made for another purpose never fits)."""
    secret = current_app.config["SECRET_KEY"]
    secret = secret if isinstance(secret, bytes) else str(secret).encode()
    return hmac.new(secret, _KEY_PURPOSE, hashlib.sha256).digest()


def _signature(random_part: str) -> str:
    """The signature of a random part, as base32."""
    return _b32(hmac.new(_signing_key(), random_part.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES])


def new_code() -> str:
    """A fresh, signed coupon code."""
    random_part = _b32(secrets.token_bytes(RANDOM_BYTES))
    return f"{random_part}.{_signature(random_part)}"


def normalise_code(raw: object) -> str | None:
    """The code as we issue it (trimmed, upper case) when `raw` is one of ours with a valid signature, else None.

    The signature is compared in constant time, so timing tells a forger nothing about how close they came.
    """
    if not isinstance(raw, str) or len(raw) > MAX_CODE_LENGTH:
        return None
    code = raw.strip().upper()
    match = CODE_RE.match(code)
    if match is None:
        return None
    random_part, given = match.groups()
    if not hmac.compare_digest(_signature(random_part), given):
        return None
    return code


def damm_digit(digits: str) -> str:
    """The Damm check digit of a string of ASCII digits; a string that ends in its own check digit gives "0"."""
    interim = 0
    for digit in digits:
        interim = _DAMM[interim][ord(digit) - 48]
    return str(interim)


def new_counter_code() -> str:
    """A fresh counter code: 11 random digits and their check digit (12 digits, no separators)."""
    digits = f"{secrets.randbelow(10**_RANDOM_DIGITS):0{_RANDOM_DIGITS}d}"
    return digits + damm_digit(digits)


def normalise_counter_code(raw: object) -> str | None:
    """The 12 digits of a counter code as typed (with or without spaces or dashes, full-width digits too) when its
    check digit verifies, else None. Only a string no longer than a QR code is looked at."""
    if not isinstance(raw, str) or len(raw) > MAX_CODE_LENGTH:
        return None
    digits = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    if COUNTER_CODE_RE.match(digits) is None or damm_digit(digits) != "0":
        return None
    return digits


def format_counter_code(code: str) -> str:
    """A counter code as riders and cashiers read it: 4-4-4 (1234-5678-9012)."""
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


# Below the QR's quiet zone (the border of 4 modules it needs to be read), a band for the counter code's text.
_QR_SCALE, _TEXT_BAND = 8, 44
_SVG_SIZE_RE = re.compile(r'<svg([^>]*?) width="(\d+)" height="(\d+)"')


def qr_svg(code: str, counter_code: str | None = None) -> bytes:
    """The code as a QR code (a full QR, not a Micro QR, which many phone scanners cannot read), SVG; with the
    counter code written 4-4-4 under it, so a rider whose QR will not scan can read it out to the cashier. The text
    sits below the QR's quiet zone, so it never disturbs a scan."""
    buffer = io.BytesIO()
    segno.make_qr(code, error="m").save(buffer, kind="svg", scale=_QR_SCALE, border=4, xmldecl=True,
                                        title="Coupon", nl=True)
    svg = buffer.getvalue().decode()
    if counter_code is None:
        return svg.encode()
    match = _SVG_SIZE_RE.search(svg)
    width, height = int(match.group(2)), int(match.group(3))
    total = height + _TEXT_BAND
    svg = (svg[:match.start()] + f'<svg{match.group(1)} width="{width}" height="{total}" '
           f'viewBox="0 0 {width} {total}"' + svg[match.end():])
    label = (f'<text x="{width // 2}" y="{height + _TEXT_BAND // 2}" text-anchor="middle" '
             f'font-family="monospace" font-size="26" fill="#000" class="counter-code">'
             f"{format_counter_code(counter_code)}</text>")
    return svg.replace("</svg>", label + "</svg>", 1).encode()
