"""The points ledger: balance = sum of entries >= 0, append-only, year-end expiry oldest first."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from metropoints.accrual.errors import InsufficientPoints
from metropoints.accrual.ledger import adjust_points, expire_points, ledger_sum, post_entry
from metropoints.accrual.models import EntryKind, LedgerEntry
from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work
from metropoints.core.errors import InvalidInput
from metropoints.core.models import Rider


def credit(rider_id: int, points: int, earned: date) -> LedgerEntry:
    """A credit earned on a given day (an operator adjustment stands in for trips here)."""
    return post_entry(rider_id=rider_id, points=points, kind=EntryKind.adjustment, reason="test credit",
                      earned_on=earned)


def fresh_balance(rider_id: int) -> int:
    """The stored balance, read again."""
    db.session.expire_all()
    return db.session.get(Rider, rider_id).points_balance


def test_debit_beyond_balance_is_refused(app, create_rider):
    """A debit larger than the balance raises InsufficientPoints and writes nothing."""
    rider = create_rider()
    credit(rider.id, 10, date(2026, 3, 1))
    commit_unit_of_work()
    with pytest.raises(InsufficientPoints):
        post_entry(rider_id=rider.id, points=-11, kind=EntryKind.redemption, ref="coupon:1")
    rollback_unit_of_work()
    assert fresh_balance(rider.id) == 10 and ledger_sum(rider.id) == 10


def test_balance_cannot_go_negative_even_in_sql(app, create_rider):
    """The database itself refuses a negative balance (a CHECK constraint, not only a Python check)."""
    rider = create_rider()
    with pytest.raises(IntegrityError):
        db.session.execute(text("UPDATE riders SET points_balance = -1 WHERE id = :id"), {"id": rider.id})
        db.session.flush()
    rollback_unit_of_work()


def test_ledger_is_append_only(app, create_rider):
    """An entry can be neither edited nor deleted; corrections are new entries."""
    rider = create_rider()
    entry = credit(rider.id, 5, date(2026, 3, 1))
    commit_unit_of_work()
    for statement in ("UPDATE ledger_entries SET points = 50 WHERE id = :id",
                      "DELETE FROM ledger_entries WHERE id = :id"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement), {"id": entry.id})
        rollback_unit_of_work()
    assert ledger_sum(rider.id) == 5


def test_adjustment_needs_a_reason(app, create_rider):
    """An operator's adjustment without a reason is refused; with one it is an entry naming its cause."""
    rider = create_rider()
    with pytest.raises(InvalidInput):
        adjust_points(rider_id=rider.id, points=5, reason=" ", actor="ops@metro")
    entry = adjust_points(rider_id=rider.id, points=5, reason="goodwill after a gate fault", actor="ops@metro")
    commit_unit_of_work()
    assert (entry.kind, entry.reason, entry.balance_after) == (EntryKind.adjustment, "goodwill after a gate fault", 5)


def test_expiry_takes_the_oldest_points_first(app, create_rider):
    """At the end of 2025 what is left of the points earned in 2024 expires; spending used the oldest first."""
    rider = create_rider()
    credit(rider.id, 100, date(2024, 5, 1))
    post_entry(rider_id=rider.id, points=-30, kind=EntryKind.redemption, ref="coupon:1")
    credit(rider.id, 50, date(2025, 6, 1))
    commit_unit_of_work()
    assert expire_points(year=2025) == 1
    commit_unit_of_work()
    assert fresh_balance(rider.id) == 50
    expiry = db.session.scalar(select(LedgerEntry).where(LedgerEntry.kind == EntryKind.expiry))
    assert (expiry.points, expiry.ref, expiry.balance_after) == (-70, "2025", 50)
    assert expire_points(year=2025) == 0  # twice changes nothing
    commit_unit_of_work()
    assert fresh_balance(rider.id) == 50 and ledger_sum(rider.id) == 50
    # A year later the 2025 points go too.
    assert expire_points(year=2026) == 1
    commit_unit_of_work()
    assert fresh_balance(rider.id) == 0


def test_spent_old_points_leave_nothing_to_expire(app, create_rider):
    """A rider who spent more than their old points loses nothing at year end."""
    rider = create_rider()
    credit(rider.id, 40, date(2024, 5, 1))
    credit(rider.id, 40, date(2025, 5, 1))
    post_entry(rider_id=rider.id, points=-45, kind=EntryKind.redemption, ref="coupon:1")
    commit_unit_of_work()
    assert expire_points(year=2025) == 0
    commit_unit_of_work()
    assert fresh_balance(rider.id) == 35


operations = st.lists(st.one_of(
    st.tuples(st.just("credit"), st.integers(1, 200), st.integers(2023, 2026)),
    st.tuples(st.just("debit"), st.integers(1, 200), st.just(0)),
    st.tuples(st.just("expire"), st.just(0), st.integers(2024, 2027)),
), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_balance_equals_sum_of_entries_and_never_negative(app, create_rider, ops):
    """Whatever mix of credits, debits and expiries: balance = sum(entries) >= 0, and balance_after follows."""
    rider = create_rider()
    for number, (kind, points, year) in enumerate(ops):
        if kind == "credit":
            credit(rider.id, points, date(year, 6, 1))
        elif kind == "debit":
            try:
                post_entry(rider_id=rider.id, points=-points, kind=EntryKind.redemption,
                           ref=f"coupon:{rider.id}-{number}")
            except InsufficientPoints:
                rollback_unit_of_work()
                continue
        else:
            expire_points(year=year, rider_ids=[rider.id])
        commit_unit_of_work()
        balance = fresh_balance(rider.id)
        assert balance == ledger_sum(rider.id) >= 0
    entries = db.session.scalars(select(LedgerEntry).where(LedgerEntry.rider_id == rider.id)
                                 .order_by(LedgerEntry.id)).all()
    running = 0
    for entry in entries:
        running += entry.points
        assert entry.balance_after == running >= 0
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.kind == EntryKind.expiry, LedgerEntry.rider_id == rider.id)) == len(
        {e.ref for e in entries if e.kind == EntryKind.expiry})


def test_a_coupon_is_paid_and_refunded_once_at_most(app, create_rider):
    """The database refuses a second redemption debit or a second refund for the same coupon."""
    rider = create_rider()
    credit(rider.id, 100, date(2026, 3, 1))
    post_entry(rider_id=rider.id, points=-10, kind=EntryKind.redemption, ref="coupon:7")
    post_entry(rider_id=rider.id, points=10, kind=EntryKind.refund, ref="coupon:7")
    commit_unit_of_work()
    for kind, points in ((EntryKind.redemption, -10), (EntryKind.refund, 10)):
        with pytest.raises(IntegrityError):
            post_entry(rider_id=rider.id, points=points, kind=kind, ref="coupon:7")
        rollback_unit_of_work()
    assert fresh_balance(rider.id) == 100 == ledger_sum(rider.id)
