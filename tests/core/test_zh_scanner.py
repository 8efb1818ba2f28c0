"""What counts as "not Chinese" on a zh page, and the scanner that finds it: raw codes (the project's StrEnum values,
the derived campaign states, audit action codes), ISO timestamps and English sentences in the visible text, read with
the standard library's HTML parser (<script> and <style> skipped, attributes and URLs never read as text except the
few attributes a person reads: placeholder, title, alt, aria-label, and data-label, which the stylesheet shows as a
stacked table cell's caption on phones)."""

from __future__ import annotations

import enum
import importlib
import pkgutil
import re
from html.parser import HTMLParser

import metropoints

# States a page may show that are computed, not stored (campaigns.catalogue.sale_state).
DERIVED_STATES = ("live", "sold_out", "scheduled", "expired", "merchant_suspended")
# Phrases that may stay in Latin letters on a Chinese page: names and brands, units, formats.
ALLOWED_PHRASES = ("Shenyang Metro", "OpenAPI", "Alipay", "CO2e", "YYYY-MM-DD", "HH:MM",
                   "Asia/Shanghai", "English", "EN", "CSV", "QR", "API")
ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:")
# Cut out before reading words: e-mail addresses, URLs, paths, and `commands` quoted as code.
EMAIL_OR_URL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|https?://\S+|/[\w./-]+|`[^`]*`")
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’]*(?:[ ,\-]+[A-Za-z][A-Za-z'’]*){2,}")
CODE_TOKEN = re.compile(r"[A-Za-z0-9_.@:/+-]+")
READ_ATTRIBUTES = ("placeholder", "title", "alt", "aria-label", "data-label")  # data-label: a CSS caption


def project_enums() -> list[type[enum.StrEnum]]:
    """Every StrEnum class defined in the package's models (imported, so a new one is picked up)."""
    found = []
    for info in pkgutil.walk_packages(metropoints.__path__, "metropoints."):
        if not info.name.endswith(".models"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, enum.StrEnum) and value is not enum.StrEnum
                    and value.__module__ == module.__name__):
                found.append(value)
    return found


def raw_codes(extra: set[str] | frozenset[str] = frozenset()) -> frozenset[str]:
    """The codes no page may show as text: each enum's values, the derived states, and `extra` (audit actions...)."""
    values = {member.value for cls in project_enums() for member in cls}
    return frozenset(values | set(DERIVED_STATES) | set(extra))


class VisibleText(HTMLParser):
    """Collects the text a reader sees: text nodes outside <script>/<style>, and the attributes people read."""

    def __init__(self) -> None:
        """Start with no text."""
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.texts: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Skip scripts and styles; keep the attributes a person reads."""
        if tag in ("script", "style"):
            self.hidden += 1
        self.attributes.extend(" ".join(value.split()) for name, value in attrs
                               if name in READ_ATTRIBUTES and value and value.strip())

    def handle_endtag(self, tag: str) -> None:
        """Leave a script or style."""
        if tag in ("script", "style") and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        """Keep a visible text node, its white space folded."""
        if not self.hidden and data.strip():
            self.texts.append(" ".join(data.split()))


def visible_text(html: str) -> tuple[list[str], list[str]]:
    """(text nodes, read attributes) of a page."""
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return parser.texts, parser.attributes


def without_allowed(text: str, allowed: tuple[str, ...] = ALLOWED_PHRASES) -> str:
    """The text with e-mail addresses, URLs, paths and the allowed phrases cut out."""
    text = EMAIL_OR_URL.sub(" ", text)
    for phrase in allowed:
        text = re.sub(rf"(?<![A-Za-z]){re.escape(phrase)}(?![A-Za-z])", " ", text)
    return text


def english_runs(text: str, allowed: tuple[str, ...] = ALLOWED_PHRASES) -> list[str]:
    """Runs of three or more ASCII words in a text (an English sentence or phrase, not a name or a code)."""
    return ENGLISH_RUN.findall(without_allowed(text, allowed))


def raw_codes_in(text: str, codes: frozenset[str]) -> list[str]:
    """The raw codes shown in a text, as whole tokens (not inside an e-mail address, a path or a longer code)."""
    found = []
    for token in CODE_TOKEN.findall(EMAIL_OR_URL.sub(" ", text)):
        token = token.strip(".:,;/")
        if token in codes:
            found.append(token)
    return found


def problems(html: str, codes: frozenset[str], untranslated: frozenset[str] = frozenset(),
             allowed: tuple[str, ...] = ALLOWED_PHRASES) -> list[str]:
    """Everything on a page that is not Chinese: raw codes, ISO timestamps, English runs, an English msgid shown
    as it is (its translation exists but was not used)."""
    texts, attributes = visible_text(html)
    found = []
    for text in texts:
        found += [f"raw code {code!r} in {text!r}" for code in raw_codes_in(text, codes)]
        if ISO_MOMENT.search(text):
            found.append(f"ISO timestamp in {text!r}")
        if text in untranslated:
            found.append(f"untranslated msgid {text!r}")
        found += [f"English {run!r} in {text!r}" for run in english_runs(text, allowed)]
    for text in attributes:
        if text in untranslated:
            found.append(f"untranslated msgid {text!r} in an attribute")
        found += [f"English {run!r} in attribute {text!r}" for run in english_runs(text, allowed)]
    return found


def test_the_scanner_reads_visible_text_only():
    """Scripts, styles and URLs are not text; a raw status in a cell, an ISO time and an English sentence are."""
    codes = raw_codes({"merchant.approve"})
    html = ('<script>var s = "approved and pending here";</script><style>p{}</style>'
            '<a href="/portal/approved">批准</a><td class="approved">approved</td>'
            '<p>2026-12-01T10:00:00+00:00</p><p>This field is required.</p><code>merchant.approve</code>'
            '<p>owner1@shop.example · Shenyang Metro Carbon Points</p><input placeholder="Type a code here">'
            '<p>沈本大街 (SHENBENDAJIE) · EN</p>')
    found = problems(html, codes)
    assert any("raw code 'approved'" in item for item in found)
    assert any("raw code 'merchant.approve'" in item for item in found)
    assert any("ISO timestamp" in item for item in found)
    assert any("'This field is required'" in item for item in found)
    assert any("attribute" in item for item in found)
    assert not any("owner1" in item or "Shenyang" in item or "var s" in item or "SHEN" in item for item in found), found


def test_every_model_enum_is_covered():
    """The raw codes come from the models' StrEnum classes, so a new status enum is checked without a list."""
    names = {cls.__name__ for cls in project_enums()}
    assert {"Role", "MerchantStatus", "CampaignStatus", "CouponStatus", "StatementStatus", "Category",
            "BenefitType", "TripStatus"} <= names
    assert {"merchant_owner", "cashier", "dining", "approved", "pending"} <= raw_codes()
