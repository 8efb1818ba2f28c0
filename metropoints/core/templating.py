"""How pages write dates and times: one way on every page, in the service zone (Asia/Shanghai): 2026-12-02 for a day,
2026-12-02 14:30 for a moment (2026-12-02 14:30:05 in the back office's logs). Templates use the `local_date` and
`local_datetime` filters, registered once here; Python that writes a time for a page (a reply the page's script
shows, a review diff) calls the same functions. (Flask-Babel's `dateformat` / `datetimeformat` write each locale's
own way, 2026/12/2 or 12/2/26: pages do not use them.) Money is written one way too: the `yuan` filter, ¥1,234.56
from integer fen, which mails call as a function. An audit entry's action (`merchant.approve`) is a code for the
filters of the audit log; pages write it in words with the `audit_action` filter, and the reasons the platform itself
wrote (in English, for the log) in the page's language with `audit_reason`."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime

from flask import Flask
from flask_babel import lazy_gettext as _l

from metropoints.core.timeutil import SERVICE_ZONE

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M"
WITH_SECONDS = DATETIME_FORMAT + ":%S"
# Every action the packages audit (core.operations.record_audit), as people read it. A new action needs its words
# here: tests/core/test_zh_pages.py fails on a page that shows a code.
AUDIT_ACTIONS = {
    "account.password_change": _l("Password changed"),
    "account.password_reset": _l("Password reset through the e-mail link"),
    "account.second_factor_on": _l("Second factor set up"),
    "account.second_factor_off": _l("Second factor turned off"),
    "account.second_factor_reset": _l("Second factor reset by the metro team"),
    "campaign.approve": _l("Campaign approved"),
    "campaign.reject": _l("Campaign rejected"),
    "campaign.duplicate": _l("Campaign copied into a new draft"),
    "campaign.pause": _l("Campaign paused"),
    "campaign.resume": _l("Campaign resumed"),
    "campaign.end": _l("Campaign ended"),
    "campaign.withdraw": _l("Campaign withdrawn from review"),
    "campaign.feature": _l("Campaign featured on kiosks"),
    "campaign.unfeature": _l("Campaign taken off kiosks"),
    "campaign.stock.raise": _l("Campaign stock raised"),
    "campaign.revision.approve": _l("Campaign changes approved"),
    "campaign.revision.reject": _l("Campaign changes rejected"),
    "campaign.revision.withdraw": _l("Campaign changes withdrawn"),
    "counter.lock": _l("Counter locked after unknown codes"),
    "kiosk.create": _l("Kiosk added"),
    "merchant.approve": _l("Merchant approved"),
    "merchant.reject": _l("Merchant rejected"),
    "merchant.suspend": _l("Merchant suspended"),
    "merchant.reinstate": _l("Merchant reinstated"),
    "merchant.cashier_second_factor_on": _l("Second factor required of cashiers"),
    "merchant.cashier_second_factor_off": _l("Second factor optional for cashiers"),
    "operator.create": _l("Metro team account created"),
    "partner.create": _l("Trip feed partner added"),
    "points.adjust": _l("Points adjusted"),
    "rules.new_version": _l("Accrual rule version added"),
    "trips.review_credited": _l("Trip credited after review"),
    "trips.review_refused": _l("Trip refused after review"),
    "buslines.set": _l("Bus line set"),
    "settlement.fee_plan": _l("Fees set"),
    "settlement.run": _l("Monthly statements made"),
    "settlement.retry_invoicing": _l("Invoicing retried"),
    "staff.create": _l("Cashier account created"),
    "staff.invite": _l("Cashier invited"),
    "staff.deactivate": _l("Cashier deactivated"),
    "store.deactivate": _l("Store closed"),
    "token.label": _l("API token label changed"),
    "token.revoke": _l("API token revoked"),
}


def local_date(value: date | datetime | None) -> str:
    """A day as YYYY-MM-DD; a stored (aware) moment as its day in Asia/Shanghai; "" for none."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(SERVICE_ZONE).date()
    return value.strftime(DATE_FORMAT)


def local_datetime(moment: datetime | None, seconds: bool = False) -> str:
    """A stored (aware) moment as YYYY-MM-DD HH:MM in Asia/Shanghai, or HH:MM:SS with `seconds` (the back office's
    logs and rule versions, where the exact second matters); "" for none."""
    return moment.astimezone(SERVICE_ZONE).strftime(WITH_SECONDS if seconds else DATETIME_FORMAT) if moment else ""


def yuan(fen: int | None) -> str:
    """Integer fen as yuan with two decimals, on every page and in every mail: 123456 -> ¥1,234.56 (the amount
    itself stays an integer; none is ¥0.00)."""
    fen = fen or 0
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def _fee_plan(m: re.Match) -> str:
    """settlement.fee_plan: the period and the two fees (written in fen), in yuan."""
    return str(_l("from %(period)s: %(coupon)s per used coupon, %(monthly)s a month", period=m["period"],
                  coupon=yuan(int(m["coupon"])), monthly=yuan(int(m["monthly"]))))


def _counter_lock(m: re.Match) -> str:
    """counter.lock: the tries, the window and the moment the counter opens again (written in ISO 8601)."""
    return str(_l("%(tries)s unknown codes within %(minutes)s minutes; refused until %(until)s", tries=m["tries"],
                  minutes=m["minutes"], until=local_datetime(datetime.fromisoformat(m["until"]))))


def _kiosk(m: re.Match) -> str:
    """kiosk.create: the station and the kiosk's label, if any."""
    station = str(_l("station %(station)s", station=m["station"]))
    return f"{station}, {m['label']}" if m["label"] else station


# The reasons the packages write themselves (not typed by a person): (action, pattern of the whole reason, its words).
AUDIT_REASONS: list[tuple[str, re.Pattern, Callable[[re.Match], str]]] = [
    ("settlement.fee_plan", re.compile(r"from (?P<period>\d{4}-\d{2}): (?P<coupon>-?\d+) fen per used coupon, "
                                       r"(?P<monthly>-?\d+) fen monthly"), _fee_plan),
    ("settlement.run", re.compile(r"(?P<made>\d+) statements made, (?P<existed>\d+) existed"),
     lambda m: str(_l("%(made)s statements made, %(existed)s there already", made=m["made"], existed=m["existed"]))),
    ("counter.lock", re.compile(r"(?P<tries>\d+) unknown codes within (?P<minutes>\d+) minutes; "
                                r"refused until (?P<until>\S+)"), _counter_lock),
    ("kiosk.create", re.compile(r"station (?P<station>\w+)(?:, (?P<label>.*))?"), _kiosk),
    ("campaign.duplicate", re.compile(r"from campaign:(?P<id>\d+)"),
     lambda m: str(_l("copied from campaign %(id)s", id=m["id"]))),
    ("campaign.feature", re.compile(r"stations (?P<stations>.+)"),
     lambda m: str(_l("stations %(stations)s", stations=m["stations"]))),
    ("campaign.unfeature", re.compile(r"station (?P<station>\w+)"),
     lambda m: str(_l("station %(station)s", station=m["station"]))),
    ("rules.new_version", re.compile(r"(?P<points>[\d.]+) pt/km, cap (?P<cap>\d+), (?P<grams>[\d.]+) g/km "
                                     r"\((?P<factor>.*)\)"),
     lambda m: str(_l("%(points)s points per km, at most %(cap)s a day, %(grams)s g CO2e per km (%(factor)s)",
                      points=m["points"], cap=m["cap"], grams=m["grams"], factor=m["factor"]))),
    ("buslines.set", re.compile(r"(?P<line>.+): (?P<metres>\d+) m a trip"),
     lambda m: str(_l("%(line)s: %(metres)s m a trip on average", line=m["line"], metres=m["metres"]))),
    ("buslines.set", re.compile(r"(?P<line>.+): the city default"),
     lambda m: str(_l("%(line)s: the city's default trip distance", line=m["line"]))),
]


def audit_reason(entry) -> str:
    """An audit entry's reason in the page's language when the platform wrote it; as typed when a person did."""
    for action, pattern, words in AUDIT_REASONS:
        if entry.action == action and (match := pattern.fullmatch(entry.reason or "")):
            return words(match)
    return entry.reason or ""


def audit_action(code: str) -> str:
    """An audited action in words, in the page's language (the code itself for one without words yet)."""
    label = AUDIT_ACTIONS.get(code)
    return str(label) if label is not None else code


def init_app(app: Flask) -> None:
    """Register the date filters, the money filter and the audit actions' words on the app's templates."""
    app.add_template_filter(local_date, "local_date")
    app.add_template_filter(local_datetime, "local_datetime")
    app.add_template_filter(yuan, "yuan")
    app.add_template_filter(audit_action, "audit_action")
    app.add_template_filter(audit_reason, "audit_reason")
