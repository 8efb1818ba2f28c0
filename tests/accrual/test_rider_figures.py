"""Each rider's carbon account per mode on the rider's row (core.models.Rider, kept by accrual.rollups): a set of
columns for every mode (what the figures add up to: tests/riders_api/test_me_modes.py)."""

from __future__ import annotations

from sqlalchemy import inspect

from metropoints.accrual.models import TripMode
from metropoints.accrual.rollups import RIDER_FIGURES, rider_figure_columns
from metropoints.core.db import db
from metropoints.core.models import Rider


def test_every_mode_has_its_columns_on_the_riders_row(app):
    """A mode added to TripMode without its columns on riders (model and migration) fails here, not in a batch."""
    expected = {f"{mode.value}_{figure}" for mode in TripMode for figure in RIDER_FIGURES}
    assert {name for _, name, _ in rider_figure_columns()} == expected
    assert expected <= set(Rider.__table__.columns.keys())
    assert expected <= {column["name"] for column in inspect(db.engine).get_columns("riders")}
