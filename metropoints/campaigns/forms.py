"""Forms of the campaign pages: the owner's editor, stock, the review decision and kiosk featuring."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    DateTimeLocalField,
    DecimalField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    ValidationError,
    widgets,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from metropoints.campaigns.fields import MAX_COUPON_DAYS, MAX_STOCK, point_price_range
from metropoints.campaigns.models import BenefitType
from metropoints.core.timeutil import SERVICE_ZONE
from metropoints.marketplace.models import Category

CATEGORY_CHOICES = [SelectChoice(Category.dining.value, _l("Dining")),
                    SelectChoice(Category.shopping.value, _l("Shopping")),
                    SelectChoice(Category.entertainment.value, _l("Entertainment")),
                    SelectChoice(Category.leisure.value, _l("Leisure"))]
BENEFIT_CHOICES = [SelectChoice(BenefitType.voucher.value, _l("Cash voucher")),
                   SelectChoice(BenefitType.discount.value, _l("Percentage discount")),
                   SelectChoice(BenefitType.free_item.value, _l("Free item"))]
LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
# Which form field shows a refusal the rules raised about a campaign field.
FIELD_OF = {"face_value_fen": "face_value_yuan", "image_name": "image"}


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes; a value that is not among the choices gets one clear message."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()

    def pre_validate(self, form: Any) -> None:
        """Refuse values outside the choices (e.g. another merchant's store)."""
        allowed = {choice.value for choice in self.choices}
        if any(value not in allowed for value in self.data or []):
            raise ValidationError(self.invalid_message)

    invalid_message: Any = _l("That is not one of the choices.")


class StoreChoiceField(MultiCheckboxField):
    """The merchant's own active stores."""

    invalid_message = _l("That is not one of your stores.")


class CampaignForm(FlaskForm):
    """The owner's campaign editor. Times are local (Asia/Shanghai); the face value is in yuan."""

    title = StringField(_l("Title"), validators=[InputRequired(), Length(max=80)])
    description = TextAreaField(_l("Description"), validators=[Length(max=2000)])
    category = SelectField(_l("Category"), choices=CATEGORY_CHOICES)
    benefit_type = SelectField(_l("Benefit"), choices=BENEFIT_CHOICES)
    face_value_yuan = DecimalField(_l("Face value (yuan, cash vouchers)"), places=2,
                                   validators=[Optional(), NumberRange(min=Decimal("0.01"), max=Decimal(10_000))])
    discount_percent = IntegerField(_l("Discount (%)"), validators=[Optional(), NumberRange(min=1, max=99)])
    point_price = IntegerField(_l("Point price"), validators=[InputRequired()])
    stock_total = IntegerField(_l("Stock"), validators=[InputRequired(), NumberRange(
        min=1, max=MAX_STOCK, message=_l("The stock must be at least 1."))])
    per_rider_limit = IntegerField(_l("Per-rider limit"), default=1, validators=[InputRequired(), NumberRange(
        min=1, max=1000, message=_l("The per-rider limit must be at least 1."))])
    valid_from = DateTimeLocalField(_l("On sale from"), format=LOCAL_FORMATS, validators=[InputRequired()])
    valid_until = DateTimeLocalField(_l("On sale until"), format=LOCAL_FORMATS, validators=[InputRequired()])
    coupon_valid_days = IntegerField(_l("Coupon valid (days)"), default=30, validators=[InputRequired(), NumberRange(
        min=1, max=MAX_COUPON_DAYS)])
    store_ids = StoreChoiceField(_l("Stores"), coerce=int)
    terms = TextAreaField(_l("Terms"), validators=[Length(max=4000)])
    image = FileField(_l("Image (PNG, JPEG or WebP, up to 2 MB)"))

    def validate_valid_until(self, field: DateTimeLocalField) -> None:
        """The sale ends after it starts."""
        if field.data and self.valid_from.data and field.data <= self.valid_from.data:
            raise ValidationError(_l("The sale must end after it starts."))

    def validate_store_ids(self, field: StoreChoiceField) -> None:
        """At least one store."""
        if not field.data:
            raise ValidationError(_l("Choose at least one store."))

    def validate(self, extra_validators: Any = None) -> bool:
        """The fields, then what the benefit type needs (Optional() ends a blank field's own checks early)."""
        valid = super().validate(extra_validators)
        benefit = self.benefit_type.data
        if benefit == BenefitType.voucher.value and not self.face_value_yuan.errors:
            if self.face_value_yuan.data is None:
                self.face_value_yuan.errors.append(_l("A cash voucher needs a face value."))
            elif self.face_value_yuan.data * 100 != int(self.face_value_yuan.data * 100):
                self.face_value_yuan.errors.append(_l("The face value is in yuan with at most two decimals."))
        if benefit == BenefitType.discount.value and self.discount_percent.data is None \
                and not self.discount_percent.errors:
            self.discount_percent.errors.append(_l("A discount needs a percentage."))
        return valid and not self.face_value_yuan.errors and not self.discount_percent.errors

    def validate_point_price(self, field: IntegerField) -> None:
        """Within the configured range for the benefit (per yuan of face value for vouchers)."""
        if field.data is None:
            return
        low, high = point_price_range(self.benefit_type.data, self.face_value_fen())
        if not low <= field.data <= high:
            raise ValidationError(_l("For this benefit the point price must be between %(low)s and %(high)s.",
                                     low=low, high=high))

    def face_value_fen(self) -> int | None:
        """The face value in fen, when a voucher has one."""
        value = self.face_value_yuan.data
        if self.benefit_type.data != BenefitType.voucher.value or value is None:
            return None
        return int(value * 100)

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill the fields from campaign values (times shown in Asia/Shanghai, face value in yuan)."""
        for name in ("title", "description", "point_price", "stock_total", "per_rider_limit", "coupon_valid_days",
                     "terms", "discount_percent", "store_ids"):
            if name in values and name in self._fields:
                self[name].data = values[name]
        self.category.data = str(values["category"])
        self.benefit_type.data = str(values["benefit_type"])
        fen = values.get("face_value_fen")
        self.face_value_yuan.data = Decimal(fen) / 100 if fen else None
        for name in ("valid_from", "valid_until"):
            self[name].data = values[name].astimezone(SERVICE_ZONE).replace(tzinfo=None)

    def campaign_data(self) -> dict[str, Any]:
        """The values as the campaign rules take them: aware times, face value in fen."""
        return {
            "title": self.title.data, "description": self.description.data, "category": self.category.data,
            "benefit_type": self.benefit_type.data, "face_value_fen": self.face_value_fen(),
            "discount_percent": self.discount_percent.data
            if self.benefit_type.data == BenefitType.discount.value else None,
            "point_price": self.point_price.data,
            "stock_total": self.stock_total.data if "stock_total" in self._fields else None,
            "per_rider_limit": self.per_rider_limit.data,
            "valid_from": self.valid_from.data.replace(tzinfo=SERVICE_ZONE),
            "valid_until": self.valid_until.data.replace(tzinfo=SERVICE_ZONE),
            "coupon_valid_days": self.coupon_valid_days.data, "store_ids": list(self.store_ids.data or []),
            "terms": self.terms.data,
        }


class StockForm(FlaskForm):
    """Add coupons to an approved campaign, at once and without review."""

    amount = IntegerField(_l("Coupons to add"), validators=[InputRequired(), NumberRange(min=1, max=MAX_STOCK)])


class ReviewForm(FlaskForm):
    """The metro team's decision on a campaign or a revision; a rejection needs a reason."""

    decision = RadioField(_l("Decision"), validators=[InputRequired()],
                          choices=[SelectChoice("approve", _l("Approve")), SelectChoice("reject", _l("Reject"))])
    reason = TextAreaField(_l("Reason"), validators=[Length(max=2000)])

    def validate_reason(self, field: TextAreaField) -> None:
        """A rejection says why, so the merchant can fix it."""
        if self.decision.data == "reject" and not (field.data or "").strip():
            raise ValidationError(_l("Please give a reason."))


class FeatureForm(FlaskForm):
    """Feature a campaign on the kiosks of chosen stations."""

    station_ids = SelectMultipleField(_l("Stations"), validators=[InputRequired()])
