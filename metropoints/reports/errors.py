"""Errors of the reports' operations (the carbon export)."""

from __future__ import annotations

from metropoints.core.errors import InvalidInput


class PeriodNotBegun(InvalidInput):
    """An export of a month that has not begun yet."""

    code = "period_not_begun"
    default_message = "That month has not begun yet: there is nothing to export."


class BadExportDirectory(InvalidInput):
    """The directory the export is written to cannot be used."""

    code = "bad_export_directory"
    default_message = "The export cannot be written there."
