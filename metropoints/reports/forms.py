"""Forms of the back office's report pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, DecimalField, IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional


class RuleVersionForm(FlaskForm):
    """A new accrual rule version. Field names match BadRule's `field`, so its errors land on the right input.

    The ranges are the rule's to judge (accrual.rules.create_rule_version); the form only parses.
    """

    mode = SelectField(_l("Mode"), choices=[SelectChoice("metro", _l("Metro")), SelectChoice("bus", _l("Bus")),
                                            SelectChoice("bike", _l("Shared bike")),
                                            SelectChoice("walk", _l("Walking"))], default="metro",
                       validators=[Optional()])
    points_per_km = DecimalField(_l("Points per km"), places=None, validators=[InputRequired()])
    daily_cap = IntegerField(_l("Daily cap (points per rider and service day)"), validators=[InputRequired()])
    mode_cap = IntegerField(_l("Cap of this mode (points per rider and service day; empty: none)"),
                            validators=[Optional()])
    co2e_factor = DecimalField(_l("CO2e factor (g per km)"), places=None, validators=[InputRequired()])
    factor_name = StringField(_l("Source of the CO2e factor"), validators=[InputRequired(), Length(max=120)])
    factor_source = StringField(_l("Where the factor is published"), validators=[Optional(), Length(max=255)])
    steps_threshold = IntegerField(_l("Walking: steps a day that earn nothing"), validators=[Optional()])
    points_per_1000_steps = DecimalField(_l("Walking: points per 1,000 steps above them"), places=None,
                                         validators=[Optional()])
    metres_per_step = DecimalField(_l("Walking: metres per step"), places=None, validators=[Optional()])
    effective_from = DateTimeLocalField(_l("In force from (Asia/Shanghai; empty: now)"), format="%Y-%m-%dT%H:%M",
                                        validators=[Optional()])
    note = TextAreaField(_l("Reason for the change"), validators=[InputRequired(), Length(max=2000)])


class ReviewDecisionForm(FlaskForm):
    """An operator's decision about a trip held for review."""

    trip_pk = IntegerField(validators=[InputRequired(), NumberRange(min=1, max=2**63 - 1)])  # trips' ids are bigint
    decision = RadioField(_l("Decision"), choices=[SelectChoice("credited", _l("Credit the trip")),
                                                   SelectChoice("refused", _l("Refuse it"))],
                          validators=[InputRequired()])
    reason = TextAreaField(_l("Reason"), validators=[InputRequired(), Length(max=500)])


class BusLineForm(FlaskForm):
    """A bus line and its average trip distance."""

    code = StringField(_l("Line code"), validators=[InputRequired(), Length(max=16)])
    name = StringField(_l("Line name"), validators=[Optional(), Length(max=120)])
    avg_trip_m = IntegerField(_l("Average trip distance (metres; empty: the city default)"), validators=[Optional()])
