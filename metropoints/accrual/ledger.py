"""The points ledger: append-only entries and a balance kept equal to their sum, never below zero."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select, text, update

from metropoints.accrual.errors import InsufficientPoints
from metropoints.accrual.ingest import lock_riders
from metropoints.accrual.models import EntryKind, LedgerEntry
from metropoints.core.db import db, sql_param
from metropoints.core.errors import InvalidInput
from metropoints.core.models import Rider
from metropoints.core.operations import record_audit
from metropoints.core.timeutil import service_day, utcnow


def post_entry(*, rider_id: int, points: int, kind: EntryKind, ref: str = "", reason: str = "", actor: str = "",
               earned_on: date | None = None, at: datetime | None = None) -> LedgerEntry:
    """Post one entry. The balance moves in the same statement that checks it, so no race can overdraw it."""
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise InvalidInput("points must be a non-zero whole number.", field="points")
    at = at or utcnow()
    balance = db.session.execute(
        update(Rider).where(Rider.id == rider_id, Rider.points_balance + points >= 0)
        .values(points_balance=Rider.points_balance + points).returning(Rider.points_balance)
    ).scalar_one_or_none()
    if balance is None:
        if db.session.get(Rider, rider_id) is None:
            raise InvalidInput("No such rider.", field="rider_id")
        raise InsufficientPoints()
    entry = LedgerEntry(rider_id=rider_id, at=at, earned_on=earned_on or service_day(at), points=points, kind=kind,
                        ref=ref, reason=reason, actor=actor, balance_after=balance)
    db.session.add(entry)
    db.session.flush()
    return entry


def adjust_points(*, rider_id: int, points: int, reason: str, actor: str) -> LedgerEntry:
    """An operator's correction: a new entry with a reason, never an edit of an old one."""
    if not reason or not reason.strip():
        raise InvalidInput("An adjustment needs a reason.", field="reason")
    entry = post_entry(rider_id=rider_id, points=points, kind=EntryKind.adjustment, reason=reason.strip(),
                       actor=actor)
    record_audit(actor=None, actor_label=actor, action="points.adjust", subject=f"rider:{rider_id}",
                 reason=f"{points:+d}: {reason.strip()}")
    return entry


def expiry_cutoff(year: int) -> date:
    """Points earned before this day have expired once `year` is over (they expire at the end of the year after)."""
    return date(year, 1, 1)


def expire_points(*, year: int, rider_ids: list[int] | None = None, now: datetime | None = None) -> int:
    """Expire, at the end of `year`, what is left of the points earned up to the end of `year - 1`.

    Spending takes the oldest points first, so what is left of the old points is what they add up to less
    everything ever debited, and never more than the balance. Since the balance is the sum of all entries, that
    is the balance less the points credited since 1 January of `year`, which the rollup of credits per rider and
    year (rollup_rider_years) holds: the job reads a row or two per rider and the riders' balances, never the
    entries themselves (but for a probe of the cutoff month for an earlier expiry). One expiry entry per rider and
    year: running this twice changes nothing. Returns the number of riders whose points expired.
    """
    if year < 2000 or year > 2200:
        raise InvalidInput("year out of range", field="year")
    now = now or utcnow()
    cutoff = expiry_cutoff(year)
    session = db.session
    only = "" if rider_ids is None else f" AND r.id IN ({', '.join(str(int(i)) for i in rider_ids)})"
    candidates = f"SELECT r.id FROM riders r WHERE r.points_balance > 0{only}"
    params = {"cutoff": sql_param(cutoff), "year": cutoff.year, "ref": str(year), "now": sql_param(now)}
    lock_riders(candidates, params)
    session.execute(text("CREATE TEMPORARY TABLE IF NOT EXISTS expiry_calc (rider_id integer, amount bigint)"))
    session.execute(text("DELETE FROM expiry_calc"))
    # The expiry entry of a year is earned on its cutoff day, so the check for one reads that month only.
    session.execute(text(
        "INSERT INTO expiry_calc (rider_id, amount) "
        "SELECT r.id, r.points_balance - COALESCE(s.recent, 0) "
        "FROM riders r LEFT JOIN (SELECT y.rider_id, SUM(y.points_earned) AS recent FROM rollup_rider_years y "
        f"WHERE y.year >= :year AND y.rider_id IN ({candidates}) GROUP BY y.rider_id) s "
        f"ON s.rider_id = r.id WHERE r.points_balance > COALESCE(s.recent, 0){only} AND NOT EXISTS ("
        "SELECT 1 FROM ledger_entries x WHERE x.rider_id = r.id AND x.kind = 'expiry' AND x.ref = :ref "
        "AND x.earned_on = :cutoff)"), params)
    # In rider order: the entries land in the cutoff month's partition, whose index by rider holds a month of
    # every rider's entries; walking it in order touches each of its pages once instead of at random.
    session.execute(text(
        "INSERT INTO ledger_entries (rider_id, at, earned_on, points, kind, ref, reason, actor, balance_after) "
        "SELECT c.rider_id, :now, :cutoff, -c.amount, 'expiry', :ref, '', 'expiry', r.points_balance - c.amount "
        "FROM expiry_calc c JOIN riders r ON r.id = c.rider_id ORDER BY c.rider_id"), params)
    session.execute(text(
        "UPDATE riders SET points_balance = riders.points_balance - c.amount FROM expiry_calc c "
        "WHERE riders.id = c.rider_id"))
    return session.execute(text("SELECT COUNT(*) FROM expiry_calc")).scalar_one()


def ledger_sum(rider_id: int) -> int:
    """The sum of a rider's entries (what the balance must equal)."""
    return db.session.scalar(select(db.func.coalesce(db.func.sum(LedgerEntry.points), 0))
                             .where(LedgerEntry.rider_id == rider_id))
