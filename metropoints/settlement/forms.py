"""Settlement's forms: an operator sets a merchant's fees."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField
from wtforms.validators import DataRequired, InputRequired, NumberRange

from metropoints.settlement.operations import MAX_FEE_FEN

FEE_RANGE = _l("Whole fen from 0 to 10,000,000 (200 fen = ¥2.00).")


class FeePlanForm(FlaskForm):
    """A merchant's fees from next month, in whole fen."""

    merchant_id = HiddenField(validators=[DataRequired()])
    fee_per_coupon_fen = IntegerField(_l("Fee per used coupon (fen)"),
                                      validators=[InputRequired(FEE_RANGE), NumberRange(0, MAX_FEE_FEN, FEE_RANGE)])
    monthly_fee_fen = IntegerField(_l("Monthly listing fee (fen)"), default=0,
                                   validators=[InputRequired(FEE_RANGE), NumberRange(0, MAX_FEE_FEN, FEE_RANGE)])
