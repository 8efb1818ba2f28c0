"""Read-only questions for the back office: the platform's headline figures, their daily series, the audit log.

Riders, redemption orders, points and CO2e come from the rollups per service day (core, accrual and redemption keep
them with their writes; reports.rollups proves them): a page reads a row per day (or per rule version or campaign
and day), never the history behind it. Merchants and campaigns are counted from their own tables, a row per merchant
or campaign, which grow with the catalogue and not with the days. Python only fills the days without rows and adds
up at most one value per day. The SQL runs on PostgreSQL and on SQLite alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, Select, and_, case, distinct, func, or_, select

from metropoints.accrual.models import RuleVersion, TripDay, TripMode
from metropoints.campaigns.models import Campaign, CampaignStatus
from metropoints.core.db import db
from metropoints.core.models import AuditEntry, RiderDay
from metropoints.core.panels import DayWindow, day_window, service_date
from metropoints.core.timeutil import SERVICE_ZONE, utcnow
from metropoints.marketplace.models import Merchant, MerchantStatus
from metropoints.redemption.models import CouponDay

PERIODS = (7, 30, 90, 365)
DEFAULT_PERIOD = 30


def parse_period(raw: str | None) -> int:
    """A period the page offers (7, 30, 90 or 365 days); anything else is the default."""
    return int(raw) if raw in {str(p) for p in PERIODS} else DEFAULT_PERIOD


@dataclass(frozen=True, slots=True)
class Series:
    """One value per service day of a window, oldest first."""

    days: list[date]
    values: list[int]

    def points(self) -> list[tuple[date, int]]:
        """(day, value) pairs for a chart."""
        return list(zip(self.days, self.values, strict=True))


def _per_day(query: Select, win: DayWindow) -> dict[date, int]:
    """Run a (day, value) GROUP BY query; the days as dates (SQLite returns text for date())."""
    result = {}
    for day, value in db.session.execute(query).all():
        day = date.fromisoformat(day) if isinstance(day, str) else day
        result[day] = int(value or 0)
    return {day: value for day, value in result.items() if win.first <= day <= win.last}


def _fill(per_day: dict[date, int], win: DayWindow, *, start: int = 0, cumulative: bool) -> Series:
    """The window's days with their values; a cumulative series starts from what came before the window."""
    values, running = [], start
    for day in win.days:
        if cumulative:
            running += per_day.get(day, 0)
            values.append(running)
        else:
            values.append(per_day.get(day, 0))
    return Series(win.days, values)


def _scalar(query: Select) -> int:
    """An aggregate as an int (0 for NULL)."""
    return int(db.session.scalar(query) or 0)


def _rollup_series(column: ColumnElement, day: ColumnElement, win: DayWindow) -> tuple[int, Series]:
    """A rollup column's total now, and its cumulative series over the window: two queries over the rollup's rows
    (one per day, or per campaign or rule version and day), never the raw rows."""
    total, before = db.session.execute(select(
        func.coalesce(func.sum(column), 0),
        func.coalesce(func.sum(case((day < win.first, column), else_=0)), 0))).one()
    per_day = _per_day(select(day, func.sum(column)).where(day >= win.first, day <= win.last).group_by(day), win)
    return int(total), _fill(per_day, win, start=int(before), cumulative=True)


def riders_series(win: DayWindow) -> tuple[int, Series]:
    """Registered riders now, and the cumulative count at the end of each day (by their Asia/Shanghai date)."""
    return _rollup_series(RiderDay.registered, RiderDay.service_day, win)


def redemptions_series(win: DayWindow) -> tuple[int, Series]:
    """Redemption orders (coupons bought, cancelled ones too: a refund is not an order) now, and cumulative by the
    service day they were bought on."""
    return _rollup_series(CouponDay.bought, CouponDay.service_day, win)


def merchants_series(win: DayWindow) -> tuple[int, int, Series]:
    """(approved merchants, all merchants) now, and the approved ones cumulative by the day they were approved."""
    approved = Merchant.status == MerchantStatus.approved
    total = _scalar(select(func.count(Merchant.id)))
    count = _scalar(select(func.count(Merchant.id)).where(approved))
    before = _scalar(select(func.count(Merchant.id)).where(
        approved, or_(Merchant.decided_at.is_(None), Merchant.decided_at < win.start)))
    day = service_date(Merchant.decided_at).label("day")
    per_day = _per_day(select(day, func.count(Merchant.id))
                       .where(approved, Merchant.decided_at >= win.start).group_by(day), win)
    return count, total, _fill(per_day, win, start=before, cumulative=True)


def live_campaigns_count(now: datetime) -> int:
    """Campaigns on sale now: approved, inside their sale window, with stock, from an approved merchant."""
    return _scalar(select(func.count(Campaign.id)).join(Merchant, Merchant.id == Campaign.merchant_id).where(
        Campaign.status == CampaignStatus.approved, Campaign.valid_from <= now, Campaign.valid_until > now,
        Campaign.stock_left > 0, Merchant.status == MerchantStatus.approved))


def campaigns_approved_series(win: DayWindow) -> Series:
    """Campaigns approved on each day (those approved now, by the day of the decision); not cumulative."""
    day = service_date(Campaign.decided_at).label("day")
    per_day = _per_day(select(day, func.count(Campaign.id)).where(
        Campaign.status == CampaignStatus.approved, Campaign.decided_at >= win.start).group_by(day), win)
    return _fill(per_day, win, cumulative=False)


def points_series(win: DayWindow) -> tuple[int, Series]:
    """Points issued for trips now, and cumulative by the service day they were earned."""
    return _rollup_series(TripDay.points, TripDay.service_day, win)


def co2e_series(win: DayWindow) -> tuple[int, Series]:
    """Grams CO2e saved by credited and capped trips now, and cumulative by service day."""
    return _rollup_series(TripDay.co2e_grams, TripDay.service_day, win)


@dataclass(frozen=True, slots=True)
class FactorUse:
    """How much of the reported CO2e was computed with one rule version's factor (invariant 7: traceable)."""

    version_id: int
    co2e_mg_per_km: int
    factor_name: str
    trips: int
    metres: int
    grams: int


def co2e_factors_used() -> list[FactorUse]:
    """Per rule version: its factor and source, and the trips, metres and grams credited with it (from the trips'
    rollup: a row per day and rule version)."""
    rows = db.session.execute(
        select(RuleVersion.id, RuleVersion.co2e_mg_per_km, RuleVersion.factor_name, func.sum(TripDay.trips),
               func.sum(TripDay.metres), func.sum(TripDay.co2e_grams))
        .join(TripDay, TripDay.rule_version_id == RuleVersion.id)
        .group_by(RuleVersion.id, RuleVersion.co2e_mg_per_km, RuleVersion.factor_name)
        .order_by(RuleVersion.id)).all()
    return [FactorUse(v, mg, name, int(n), int(m or 0), int(g or 0)) for v, mg, name, n, m, g in rows]


@dataclass(frozen=True, slots=True)
class ModeFigures:
    """Credited and capped trips of one mode, their metres, grams CO2e and points."""

    trips: int = 0
    metres: int = 0
    co2e_grams: int = 0
    points: int = 0


@dataclass(frozen=True, slots=True)
class ModeSplit:
    """One mode's figures over the page's window and since the start."""

    mode: TripMode
    period: ModeFigures
    total: ModeFigures


def mode_split(win: DayWindow) -> list[ModeSplit]:
    """Every mode's trips, metres, grams CO2e and points, in the window and in all, from the trips' rollup (one query
    over its rows: a row per day, mode and rule version)."""
    counters = (TripDay.trips, TripDay.metres, TripDay.co2e_grams, TripDay.points)
    in_window = and_(TripDay.service_day >= win.first, TripDay.service_day <= win.last)
    found = {}
    for mode, *sums in db.session.execute(
            select(TripDay.mode, *(func.sum(c) for c in counters), *(func.sum(case((in_window, c), else_=0))
                                                                   for c in counters)).group_by(TripDay.mode)):
        values = [int(v or 0) for v in sums]
        found[TripMode(mode)] = ModeSplit(TripMode(mode), ModeFigures(*values[4:]), ModeFigures(*values[:4]))
    return [found.get(mode, ModeSplit(mode, ModeFigures(), ModeFigures())) for mode in TripMode]


@dataclass(frozen=True, slots=True)
class Kpis:
    """The headline figures and their daily series over one window."""

    window: DayWindow
    riders: int
    riders_series: Series
    redemptions: int
    redemptions_series: Series
    merchants_approved: int
    merchants_total: int
    merchants_series: Series
    live_campaigns: int
    campaigns_approved_series: Series
    points_issued: int
    points_series: Series
    co2e_grams: int
    co2e_series: Series
    factors: list[FactorUse]
    modes: list[ModeSplit]


def kpis(days: int = DEFAULT_PERIOD, *, now: datetime | None = None) -> Kpis:
    """Every headline figure with its series over the last `days` service days."""
    now = now or utcnow()
    win = day_window(days, now=now)
    riders, riders_s = riders_series(win)
    redemptions, redemptions_s = redemptions_series(win)
    approved, merchants, merchants_s = merchants_series(win)
    points, points_s = points_series(win)
    grams, co2e_s = co2e_series(win)
    return Kpis(win, riders, riders_s, redemptions, redemptions_s, approved, merchants, merchants_s,
                live_campaigns_count(now), campaigns_approved_series(win), points, points_s, grams, co2e_s,
                co2e_factors_used(), mode_split(win))


@dataclass(frozen=True)
class AuditFilter:
    """What the audit log is narrowed to: an action prefix, the actor, the object (prefix), local dates."""

    action: str = ""
    actor: str = ""
    subject: str = ""
    since: date | None = None  # first day shown, Asia/Shanghai
    until: date | None = None  # last day shown, Asia/Shanghai

    def args(self) -> dict[str, str]:
        """The filter as query-string arguments (empty ones left out), for links that keep it."""
        values = {"action": self.action, "actor": self.actor, "subject": self.subject,
                  "from": self.since.isoformat() if self.since else "",
                  "to": self.until.isoformat() if self.until else ""}
        return {key: value for key, value in values.items() if value}


# A filtered page searches at most this many entries (from its cursor, in its order), whatever the log's size: a rare
# filter gets a short page with a link that searches on from where this one stopped.
AUDIT_SCAN = 5000


@dataclass(frozen=True, slots=True)
class AuditPage:
    """A page of the audit log: its entries, the cursor of the next page (None at the end: entries before it newest
    first, after it oldest first), and whether the page stopped at the search limit rather than because it was full."""

    entries: list[AuditEntry]
    next_cursor: int | None
    searched_to: int | None = None  # the last entry id searched, when the search limit ended the page


def audit_page(*, where: AuditFilter | None = None, before_id: int | None = None, after_id: int | None = None,
               oldest_first: bool = False, limit: int = 50) -> AuditPage:
    """Audit entries newest first (older than `before_id`) or, `oldest_first`, oldest first (newer than `after_id`),
    narrowed by `where`. One keyset over the id (the order entries were written in): unfiltered, a page reads `limit`
    + 1 rows wherever it is in the log; filtered, it searches the AUDIT_SCAN entries from the cursor (one primary-key
    range) for them."""
    where = where or AuditFilter()
    if oldest_first:
        order, bound = AuditEntry.id.asc(), (AuditEntry.id > after_id if after_id is not None else None)
    else:
        order, bound = AuditEntry.id.desc(), (AuditEntry.id < before_id if before_id is not None else None)
    query = select(AuditEntry).order_by(order).limit(limit + 1)
    if bound is not None:
        query = query.where(bound)
    edge = None
    if where.args():
        stretch = select(AuditEntry.id).order_by(order)
        edge = db.session.scalar((stretch.where(bound) if bound is not None else stretch).offset(AUDIT_SCAN - 1)
                                 .limit(1))
        if edge is not None:
            query = query.where(AuditEntry.id <= edge if oldest_first else AuditEntry.id >= edge)
    if where.action:
        query = query.where(AuditEntry.action.startswith(where.action, autoescape=True))
    if where.actor:
        query = query.where(AuditEntry.actor_label.startswith(where.actor, autoescape=True))
    if where.subject:
        query = query.where(AuditEntry.subject.startswith(where.subject, autoescape=True))
    if where.since:
        query = query.where(AuditEntry.at >= _local_midnight(where.since))
    if where.until:
        query = query.where(AuditEntry.at < _local_midnight(where.until + timedelta(days=1)))
    entries = list(db.session.scalars(query))
    if len(entries) > limit:
        return AuditPage(entries[:limit], entries[limit - 1].id)
    if edge is not None:
        return AuditPage(entries, edge, searched_to=edge)
    return AuditPage(entries, None)


def _local_midnight(day: date) -> datetime:
    """The first moment of a day in Asia/Shanghai, in UTC."""
    return datetime.combine(day, time(), tzinfo=SERVICE_ZONE).astimezone(UTC)


AUDIT_SUGGESTIONS_FROM = 1000  # the filter suggests the actions of this many newest entries: bounded, not all history


def audit_actions() -> Sequence[str]:
    """The actions of the newest entries, for the filter's suggestions (a bounded read, whatever the log's size)."""
    newest = select(AuditEntry.action).order_by(AuditEntry.id.desc()).limit(AUDIT_SUGGESTIONS_FROM).subquery()
    return list(db.session.scalars(select(distinct(newest.c.action)).order_by(newest.c.action)))
