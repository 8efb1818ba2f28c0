"""Read-only questions about a rider's accrual: totals, trips, links, ledger; and partners' names for the back
office's token list (`register_token_names`)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Select, func, select

from metropoints.accrual.models import LedgerEntry, Partner, RiderLink, Trip, TripDay, TripStatus
from metropoints.core.db import db
from metropoints.core.models import TokenKind
from metropoints.core.token_queries import name_subjects


def rider_totals(rider_id: int) -> tuple[int, int]:
    """(metres, grams CO2e) over the rider's credited and capped trips; a capped ride still saved its CO2e."""
    metres, grams = db.session.execute(
        select(func.coalesce(func.sum(Trip.distance_m), 0), func.coalesce(func.sum(Trip.co2e_grams), 0))
        .where(Trip.rider_id == rider_id, Trip.status.in_([TripStatus.credited, TripStatus.capped]))).one()
    return int(metres), int(grams)


def rider_links(rider_id: int) -> list[RiderLink]:
    """The rider's account references, oldest first."""
    return list(db.session.scalars(select(RiderLink).where(RiderLink.rider_id == rider_id).order_by(RiderLink.id)))


def rider_trips_query(rider_id: int) -> Select:
    """The rider's trips (for a newest-first page keyed on Trip.id)."""
    return select(Trip).where(Trip.rider_id == rider_id)


def rider_ledger_query(rider_id: int) -> Select:
    """The rider's ledger entries (for a newest-first page keyed on LedgerEntry.id)."""
    return select(LedgerEntry).where(LedgerEntry.rider_id == rider_id)


def city_totals() -> dict[str, int]:
    """The city's figures from the trips' rollup (a row per day and rule version, never the trips): grams CO2e of
    credited and capped trips, points credited for trips, and those trips' count and metres."""
    trips, metres, points, grams = db.session.execute(
        select(func.coalesce(func.sum(TripDay.trips), 0), func.coalesce(func.sum(TripDay.metres), 0),
               func.coalesce(func.sum(TripDay.points), 0), func.coalesce(func.sum(TripDay.co2e_grams), 0))).one()
    return {"trips": int(trips), "metres": int(metres), "points": int(points), "co2e_grams": int(grams)}


def partner_names(ids: Collection[int]) -> dict[int, str]:
    """partner id -> name, for these partners (one query)."""
    if not ids:
        return {}
    return {partner_id: name for partner_id, name in
            db.session.execute(select(Partner.id, Partner.name).where(Partner.id.in_(ids)))}


def partners_named(name: str) -> Select:
    """The ids of the partner with this name (as searched on the token list)."""
    return select(Partner.id).where(Partner.name == name.strip())


def register_token_names() -> None:
    """The token list names a partner's token by the partner, whatever its label says (create_app calls this)."""
    name_subjects(TokenKind.partner, names=partner_names, find=partners_named)
