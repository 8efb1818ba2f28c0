"""Forms of the back office's report pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, DecimalField, IntegerField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional


class RuleVersionForm(FlaskForm):
    """A new accrual rule version. Field names match BadRule's `field`, so its errors land on the right input.

    The ranges are the rule's to judge (accrual.rules.create_rule_version); the form only parses.
    """

    points_per_km = DecimalField(_l("Points per km"), places=None, validators=[InputRequired()])
    daily_cap = IntegerField(_l("Daily cap (points per rider and service day)"), validators=[InputRequired()])
    co2e_factor = DecimalField(_l("CO2e factor (g per km)"), places=None, validators=[InputRequired()])
    factor_name = StringField(_l("Source of the CO2e factor"), validators=[InputRequired(), Length(max=120)])
    effective_from = DateTimeLocalField(_l("In force from (Asia/Shanghai; empty: now)"), format="%Y-%m-%dT%H:%M",
                                        validators=[Optional()])
    note = TextAreaField(_l("Reason for the change"), validators=[InputRequired(), Length(max=2000)])
