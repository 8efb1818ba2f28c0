"""Coupon codes and their QR images.

A code is `<random part>.<signature>`: 16 random bytes in base32 (26 characters, no padding), a dot, and the first
10 bytes of HMAC-SHA256 over the random part under a key derived from SECRET_KEY (16 characters). The random part
cannot be guessed (128 bits); the signature cannot be forged without the key, so a counter refuses a made-up or
altered code before it looks at a single coupon row. Upper-case base32 and the dot are all in the QR alphanumeric
set, so the QR stays small and any scanner reads it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import secrets

import segno
from flask import current_app

RANDOM_BYTES, SIGNATURE_BYTES = 16, 10
CODE_RE = re.compile(r"^([A-Z2-7]{26})\.([A-Z2-7]{16})$")
MAX_CODE_LENGTH = 64  # the column's width; anything longer is refused unread
_KEY_PURPOSE = b"metropoints/coupon-code/v1"


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


def qr_svg(code: str) -> bytes:
    """The code as a QR code (a full QR, not a Micro QR, which many phone scanners cannot read), SVG."""
    buffer = io.BytesIO()
    segno.make_qr(code, error="m").save(buffer, kind="svg", scale=8, border=4, xmldecl=True,
                                        title="Coupon", nl=True)
    return buffer.getvalue()
