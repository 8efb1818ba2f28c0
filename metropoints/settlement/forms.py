"""Settlement's forms: an operator sets a merchant's fees, typed in yuan and kept in integer fen."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import Field, HiddenField
from wtforms.validators import DataRequired, ValidationError
from wtforms.widgets import TextInput

from metropoints.core.templating import yuan
from metropoints.settlement.operations import MAX_FEE_FEN

# Yuan as typed: ASCII digits (Decimal would take other scripts' digits too), then decimals after a point. Input
# longer than MAX_TYPED is refused before it is matched.
YUAN_PATTERN = re.compile(r"([0-9]*)(?:\.([0-9]*))?", re.ASCII)
MAX_TYPED = 32
FEE_HINT = _l("Yuan with at most two decimals, from 0 to %(max)s, e.g. 1.50.", max=yuan(MAX_FEE_FEN))


def yuan_text(fen: int) -> str:
    """Integer fen as an operator types yuan: 150 -> 1.50 (no sign, no thousands separator)."""
    return f"{fen // 100}.{fen % 100:02d}"


def parse_yuan(typed: str) -> int:
    """Yuan as typed (1, 1.5, 1.50, ¥1.50) as exact integer fen (150), through Decimal, never a float. A refusal is
    a ValidationError whose message says what to type."""
    text = typed.strip().removeprefix("¥").removeprefix("￥").strip()
    if not text:
        raise ValidationError(_l("Type an amount in yuan, e.g. 2.00."))
    if len(text) > MAX_TYPED:
        raise ValidationError(_l("At most %(max)s.", max=yuan(MAX_FEE_FEN)))
    if text.startswith("-"):
        raise ValidationError(_l("A fee cannot be negative."))
    match = YUAN_PATTERN.fullmatch(text)
    if match is None or not (match[1] or match[2]):
        raise ValidationError(_l("Type an amount in yuan with digits and a point, e.g. 1.50."))
    if match[2] and len(match[2]) > 2:
        raise ValidationError(_l("At most two decimals: yuan and fen, e.g. 1.50."))
    if len(match[1].lstrip("0")) > len(str(MAX_FEE_FEN)):
        raise ValidationError(_l("At most %(max)s.", max=yuan(MAX_FEE_FEN)))
    fen = int(Decimal(text).scaleb(2))  # exact: a few digits, far inside Decimal's 28
    if fen > MAX_FEE_FEN:
        raise ValidationError(_l("At most %(max)s.", max=yuan(MAX_FEE_FEN)))
    return fen


class YuanField(Field):
    """An amount typed in yuan; `data` is integer fen (None until a valid amount is typed)."""

    widget = TextInput()

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Keep what was typed (shown again on a refusal) and its fen, or the reason it is refused."""
        self.data = None
        if valuelist:
            self.data = parse_yuan(str(valuelist[0]))

    def pre_validate(self, form: FlaskForm) -> None:
        """A missing field is refused like an empty one."""
        if self.data is None and not self.process_errors:
            raise ValidationError(_l("Type an amount in yuan, e.g. 2.00."))

    def _value(self) -> str:
        """The field as shown again: what was typed, else the fen as yuan."""
        if self.raw_data:
            return str(self.raw_data[0])
        return yuan_text(self.data) if self.data is not None else ""


class FeePlanForm(FlaskForm):
    """A merchant's fees from next month, typed in yuan."""

    merchant_id = HiddenField(validators=[DataRequired()])
    fee_per_coupon = YuanField(_l("Fee per used coupon (yuan)"), description=FEE_HINT)
    monthly_fee = YuanField(_l("Monthly listing fee (yuan)"), description=FEE_HINT, default=0)
