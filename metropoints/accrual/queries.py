"""Read-only questions about a rider's accrual: totals (per mode too), trips, links, ledger; and partners' names for
the back office's token list (`register_token_names`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Select, func, select

from metropoints.accrual.models import LedgerEntry, Partner, RiderLink, Trip, TripDay, TripMode
from metropoints.accrual.rollups import RIDER_FIGURES, rider_figure_names
from metropoints.core.db import db
from metropoints.core.models import Rider, TokenKind
from metropoints.core.token_queries import name_subjects


@dataclass(frozen=True, slots=True)
class ModeTotals:
    """What a rider's credited and capped trips of one mode add up to."""

    metres: int = 0
    co2e_grams: int = 0
    points: int = 0


def rider_totals_by_mode(rider_id: int) -> dict[TripMode, ModeTotals]:
    """Every mode (those without trips at zero) with the metres, grams CO2e and points of the rider's credited and
    capped trips of that mode: the rider's own row (core.models.Rider's carbon account, kept by accrual.rollups),
    never the trips (a rider of years has thousands, in every month's partition)."""
    names = rider_figure_names()
    row = db.session.execute(select(*(getattr(Rider, name) for name in names))
                             .where(Rider.id == rider_id)).one_or_none()
    figures = dict(zip(names, row or (), strict=False))
    return {mode: ModeTotals(**{figure: int(figures.get(f"{mode.value}_{figure}") or 0) for figure in RIDER_FIGURES})
            for mode in TripMode}


def rider_links(rider_id: int) -> list[RiderLink]:
    """The rider's account references, oldest first."""
    return list(db.session.scalars(select(RiderLink).where(RiderLink.rider_id == rider_id).order_by(RiderLink.id)))


def rider_trips_query(rider_id: int) -> Select:
    """The rider's trips (for a newest-first page keyed on Trip.id)."""
    return select(Trip).where(Trip.rider_id == rider_id)


def rider_ledger_query(rider_id: int) -> Select:
    """The rider's ledger entries (for a newest-first page keyed on LedgerEntry.id)."""
    return select(LedgerEntry).where(LedgerEntry.rider_id == rider_id)


def city_totals_by_mode() -> dict[TripMode, dict[str, int]]:
    """The city's figures per mode (every mode, zeros without trips) from the trips' rollup (a row per day, mode and
    rule version, never the trips): the credited and capped trips' count, metres, points and grams CO2e."""
    found = {TripMode(mode): {"trips": int(trips or 0), "metres": int(metres or 0), "points": int(points or 0),
                              "co2e_grams": int(grams or 0)}
             for mode, trips, metres, points, grams in db.session.execute(
                 select(TripDay.mode, func.sum(TripDay.trips), func.sum(TripDay.metres), func.sum(TripDay.points),
                        func.sum(TripDay.co2e_grams)).group_by(TripDay.mode))}
    zeros = {"trips": 0, "metres": 0, "points": 0, "co2e_grams": 0}
    return {mode: found.get(mode, zeros) for mode in TripMode}


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
