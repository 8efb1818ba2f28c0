"""The back office's report pages: KPIs with charts, accrual rule versions, the audit log. Operators only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from werkzeug.routing import BuildError

from metropoints.accrual.errors import BadRule
from metropoints.accrual.models import TripMode
from metropoints.accrual.rules import create_rule_version, describe, load_rulebook
from metropoints.core.charts import line_chart, thousands
from metropoints.core.db import MAX_ID
from metropoints.core.mail import caught_mail, recent_mail
from metropoints.core.models import MailStatus, Role
from metropoints.core.portal import add_nav, role_required
from metropoints.core.replica import stale_ok
from metropoints.core.signin import step_up_required
from metropoints.core.timeutil import SERVICE_ZONE, utcnow
from metropoints.core.urls import id_arg
from metropoints.reports import queries
from metropoints.reports.forms import RuleVersionForm
from metropoints.reports.methodology_views import MODE_LABELS, seeded_text

bp = Blueprint("reports", __name__, url_prefix="/backoffice")

add_nav("reports.kpis", _l("KPIs"), Role.operator, order=10)
add_nav("reports.rules", _l("Accrual rules"), Role.operator, order=80)
add_nav("reports.audit", _l("Audit log"), Role.operator, order=90)
add_nav("reports.mail", _l("Mail"), Role.operator, order=95)

AUDIT_PAGE_SIZE = 50
GRAMS_PER_TONNE = 1_000_000


@dataclass(frozen=True, slots=True)
class Card:
    """One headline figure on the KPI page, with what it counts and its chart."""

    key: str
    label: str
    figure: str
    note: str
    chart: Markup


def tonnes(grams: int) -> str:
    """Grams CO2e as tonnes with one decimal (half up) and thousands separators."""
    return f"{(Decimal(grams) / GRAMS_PER_TONNE).quantize(Decimal('0.1'), ROUND_HALF_UP):,}"


def co2e_axis(series_max: int):
    """An axis label for grams: tonnes once the series reaches a tonne, kilograms below (0.0 t says nothing)."""
    if series_max >= GRAMS_PER_TONNE:
        return lambda grams: f"{grams / GRAMS_PER_TONNE:,.1f} t"
    return lambda grams: f"{grams / 1000:,.0f} kg"


def factor_g_per_km(mg_per_km: int) -> str:
    """A CO2e factor stored in mg/km, as g/km without trailing zeros."""
    return f"{(Decimal(mg_per_km) / 1000).normalize():f}"


def kpi_cards(k: queries.Kpis) -> list[Card]:
    """The six cards of the KPI page."""
    no_data = _("No data yet")

    def chart(key: str, title: str, series: queries.Series, value_format=thousands) -> Markup:
        """The card's chart over the page's period."""
        return line_chart(series.points(), title=title, chart_id=f"chart-{key}", empty_text=no_data,
                          value_format=value_format)

    co2e_max = max(k.co2e_series.values, default=0)
    return [
        Card("riders", _("Registered riders"), f"{k.riders:,}", _("cumulative, by day of registration"),
             chart("riders", _("Registered riders, cumulative"), k.riders_series)),
        Card("redemptions", _("Redemption orders"), f"{k.redemptions:,}", _("benefits bought with points, cumulative"),
             chart("redemptions", _("Redemption orders, cumulative"), k.redemptions_series)),
        Card("merchants", _("Merchants"), f"{k.merchants_approved:,}",
             _("approved, of %(total)s merchants", total=f"{k.merchants_total:,}"),
             chart("merchants", _("Approved merchants, cumulative by day of approval"), k.merchants_series)),
        Card("campaigns", _("Live campaigns"), f"{k.live_campaigns:,}",
             _("on sale now; the chart shows campaigns approved per day"),
             chart("campaigns", _("Campaigns approved per day"), k.campaigns_approved_series)),
        Card("points", _("Points issued"), f"{k.points_issued:,}", _("credited for trips, cumulative"),
             chart("points", _("Points issued for trips, cumulative"), k.points_series)),
        Card("co2e", _("Tonnes CO2e saved"), tonnes(k.co2e_grams), _("credited and capped trips × the factor below"),
             chart("co2e", _("CO2e saved, cumulative"), k.co2e_series, co2e_axis(co2e_max))),
    ]


@bp.get("/")
@role_required(Role.operator)
@stale_ok
def kpis():
    """The platform's headline figures, each with its chart over the chosen period."""
    days = queries.parse_period(request.args.get("days"))
    figures = queries.kpis(days)
    return render_template("reports/kpis.html", cards=kpi_cards(figures), figures=figures, days=days,
                           periods=queries.PERIODS, factors=figures.factors, tonnes=tonnes,
                           factor_g_per_km=factor_g_per_km, mode_labels=MODE_LABELS)


def _in_shanghai(moment: datetime | None) -> datetime | None:
    """A datetime-local value (wall time in Shenyang) as an aware datetime."""
    return moment.replace(tzinfo=SERVICE_ZONE) if moment is not None else None


@bp.route("/rules", methods=["GET", "POST"])
@role_required(Role.operator)
@step_up_required
def rules():
    """The accrual rule versions, the one in force marked, and a form to add one (audited by the rule itself)."""
    form = RuleVersionForm()
    if form.validate_on_submit():
        try:
            version = create_rule_version(
                mode=form.mode.data or "metro", points_per_km=str(form.points_per_km.data),
                daily_cap=form.daily_cap.data, mode_cap=form.mode_cap.data,
                co2e_factor_g_per_km=str(form.co2e_factor.data), factor_name=form.factor_name.data,
                factor_source=form.factor_source.data or "", steps_threshold=form.steps_threshold.data or 0,
                points_per_1000_steps=str(form.points_per_1000_steps.data or 0),
                metres_per_step=str(form.metres_per_step.data or 0), actor=current_user,
                actor_label=current_user.email, effective_from=_in_shanghai(form.effective_from.data),
                note=form.note.data.strip())
        except BadRule as error:
            field = getattr(form, str(error.fields.get("field")), None)
            (field.errors if field is not None else form.form_errors).append(error.message)
        else:
            flash(_("Rule version %(id)s added.", id=version.id))
            return redirect(url_for("reports.rules"))
    book = load_rulebook()
    now = utcnow()
    # Metro first, then each green mode that has versions; the newest version of each on top.
    modes = [(mode, list(reversed(book.modes[mode].versions)), book.modes[mode].version_for(now))
             for mode in TripMode if mode in book.modes]
    in_force = book.version_for(now)
    return render_template("reports/rules.html", form=form, versions=list(reversed(book.versions)), modes=modes,
                           mode_labels=MODE_LABELS, in_force=in_force, now=now, seeded_text=seeded_text,
                           describe=describe), 422 if form.errors else 200


def _audit_filter() -> tuple[queries.AuditFilter, list[str]]:
    """The audit log's filter from the query string, and what could not be read in it."""
    errors, days = [], {}
    for name in ("from", "to"):
        raw = request.args.get(name, "").strip()
        try:
            days[name] = date.fromisoformat(raw) if raw else None
        except ValueError:
            days[name] = None
            errors.append(_("Dates are written YYYY-MM-DD."))
    where = queries.AuditFilter(action=request.args.get("action", "").strip()[:64],
                                actor=request.args.get("actor", "").strip()[:120],
                                subject=request.args.get("subject", "").strip()[:120],
                                since=days["from"], until=days["to"])
    return where, sorted(set(errors))


# Where an entry's subject ("merchant:12", "statement 7") is shown: the endpoint and its id argument.
SUBJECT_PAGES = {"merchant": ("marketplace.merchant", "merchant_id"),
                 "campaign": ("campaigns.review_campaign", "campaign_id"),
                 "statement": ("settlement.backoffice_statement", "statement_id")}
SUBJECT_RE = re.compile(r"^([a-z_]+)[: ]([0-9]{1,10})$")


def subject_link(subject: str) -> str | None:
    """The back-office page of an entry's object, when it has one."""
    match = SUBJECT_RE.match(subject or "")
    target = SUBJECT_PAGES.get(match.group(1)) if match else None
    if target is None or not 0 < int(match.group(2)) <= MAX_ID:
        return None
    try:
        return url_for(target[0], **{target[1]: int(match.group(2))})
    except BuildError:
        return None


@bp.get("/audit")
@role_required(Role.operator)
@stale_ok
def audit():
    """The audit log, newest first (or oldest first: `?order=oldest`), a page at a time (cursor: entries before an
    id, or after one oldest first), filtered by action, actor, object and dates (each page searching a bounded
    stretch of the log); each entry links to its object's page where there is one."""
    where, errors = _audit_filter()
    oldest = request.args.get("order") == "oldest"
    order = {"order": "oldest"} if oldest else {}
    before, after = (None, id_arg("after")) if oldest else (id_arg("before"), None)
    page = queries.audit_page(where=where, before_id=before, after_id=after, oldest_first=oldest,
                              limit=AUDIT_PAGE_SIZE)
    cursor = {"after" if oldest else "before": page.next_cursor} if page.next_cursor else {}
    next_url = url_for("reports.audit", **where.args(), **order, **cursor) if cursor else None
    return render_template("reports/audit.html", entries=page.entries, prefix=where.action, where=where,
                           errors=errors, before=before or after, next_url=next_url, searched_to=page.searched_to,
                           actions=queries.audit_actions(), subject_link=subject_link, oldest=oldest,
                           order=order), 422 if errors else 200


MAIL_STATUS_LABELS = {MailStatus.queued: _l("Queued"), MailStatus.sent: _l("Sent"), MailStatus.failed: _l("Failed")}


@bp.get("/mail")
@role_required(Role.operator)
def mail():
    """The newest mail the platform sent (or could not send, with the error), and under `make run` what the local
    mail catcher received."""
    folder = current_app.config.get("MAIL_CATCHER_DIR")
    return render_template("reports/mail.html", sent=recent_mail(), caught=caught_mail(folder) if folder else None,
                           status_labels=MAIL_STATUS_LABELS)
