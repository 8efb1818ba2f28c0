"""Forms of the merchant portal and the back office's merchant pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, Form, IntegerField, PasswordField, SearchField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional, Regexp

from metropoints.core.operations import MIN_PASSWORD
from metropoints.marketplace.models import Category, MerchantStatus

CATEGORY_LABELS = {
    Category.dining: _l("Dining"),
    Category.shopping: _l("Shopping"),
    Category.entertainment: _l("Entertainment"),
    Category.leisure: _l("Leisure"),
}
STATUS_LABELS = {
    MerchantStatus.applied: _l("Awaiting review"),  # not "Applied": that msgid is the date column
    MerchantStatus.approved: _l("Approved"),
    MerchantStatus.rejected: _l("Rejected"),
    MerchantStatus.suspended: _l("Suspended"),
}
DECISION_LABELS = {"approve": _l("Approve"), "reject": _l("Reject"), "suspend": _l("Suspend"),
                   "reinstate": _l("Reinstate")}
REQUIRED = _l("This field is required.")


def choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as the options of a select field."""
    return [SelectChoice(value, label) for value, label in pairs]


def _password_validators() -> list:
    """A new password: required, MIN_PASSWORD to 200 characters."""
    return [DataRequired(REQUIRED),
            Length(min=MIN_PASSWORD, max=200, message=_l("The password must have at least 8 characters."))]


class ApplicationForm(FlaskForm):
    """A merchant's application to join the platform."""

    name = StringField(_l("Business name"), validators=[DataRequired(REQUIRED), Length(max=120)])
    category = SelectField(_l("Category"), choices=choices((c.value, label) for c, label in CATEGORY_LABELS.items()),
                           validators=[DataRequired(REQUIRED)])
    contact_name = StringField(_l("Contact name"), validators=[DataRequired(REQUIRED), Length(max=64)])
    contact_phone = StringField(_l("Contact phone"), validators=[
        DataRequired(REQUIRED),
        Regexp(r"^\+?[0-9][0-9 -]{5,18}[0-9]$", message=_l("Enter a phone number of 7 to 20 digits."))])
    licence_no = StringField(_l("Business licence number (unified social credit code)"), validators=[
        DataRequired(REQUIRED),
        Regexp(r"^\s*[0-9A-Za-z]{18}\s*$", message=_l("The licence number has 18 digits and upper-case letters."))])
    email = EmailField(_l("Owner's e-mail (your login)"), validators=[
        DataRequired(REQUIRED), Email(message=_l("Enter an e-mail address."), check_deliverability=False),
        Length(max=254)])
    password = PasswordField(_l("Password"), validators=_password_validators())


class StoreForm(FlaskForm):
    """A store: name, address, the nearest metro station, opening hours."""

    name = StringField(_l("Store name"), validators=[DataRequired(REQUIRED), Length(max=120)])
    address = StringField(_l("Address"), validators=[DataRequired(REQUIRED), Length(max=255)])
    station_id = SelectField(_l("Nearest metro station"), validators=[DataRequired(REQUIRED)],
                             validate_choice=True)
    opening_hours = StringField(_l("Opening hours"), validators=[Optional(), Length(max=120)],
                                description=_l("e.g. Mon–Sun 10:00–22:00"))


class InviteForm(FlaskForm):
    """Invite a cashier, bound to one store of the merchant."""

    email = EmailField(_l("Cashier's e-mail"), validators=[
        DataRequired(REQUIRED), Email(message=_l("Enter an e-mail address."), check_deliverability=False),
        Length(max=254)])
    store_id = SelectField(_l("Store"), coerce=int, validators=[DataRequired(REQUIRED)], validate_choice=True)


class AcceptInviteForm(FlaskForm):
    """An invited cashier chooses a password."""

    password = PasswordField(_l("Choose a password"), validators=_password_validators())
    confirm = PasswordField(_l("Repeat the password"), validators=[
        DataRequired(REQUIRED), EqualTo("password", message=_l("The passwords do not match."))])


class DecisionForm(FlaskForm):
    """An operator's decision on a merchant; rejections and suspensions need a reason."""

    decision = SelectField(choices=choices(DECISION_LABELS.items()), validators=[DataRequired(REQUIRED)])
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=2000)])


SORT_LABELS = {"applied": _l("Applied"), "name": _l("Business name"), "status": _l("Status")}
DIRECTION_LABELS = {"desc": _l("Descending"), "asc": _l("Ascending")}


class MerchantListForm(Form):
    """The back office's merchant list, read from the query string (a GET form: no CSRF token); a value that does
    not fit falls back to the default rather than failing the page."""

    q = SearchField(_l("Search"), validators=[Optional(), Length(max=120)],
                    description=_l("Name, licence number, contact or owner's e-mail"))
    status = SelectField(_l("Status"), choices=choices([("", _l("All")),
                                                        *((s.value, label) for s, label in STATUS_LABELS.items())]),
                         validate_choice=True)
    sort = SelectField(_l("Sort by"), choices=choices(SORT_LABELS.items()), default="applied", validate_choice=True)
    dir = SelectField(_l("Order"), choices=choices(DIRECTION_LABELS.items()), default="desc", validate_choice=True)
    page = IntegerField(default=1, validators=[Optional()])

    def values(self) -> dict:
        """The search as MerchantSearch's fields: each field's value when valid, its default otherwise."""
        self.validate()

        def valid(field, default):
            """The field's value unless it failed its checks or is empty."""
            return default if field.errors or field.data in (None, "") else field.data

        page = valid(self.page, 1)
        return {"text": str(valid(self.q, "")).strip()[:120],
                "status": MerchantStatus(valid(self.status, "")) if valid(self.status, "") else None,
                "sort": valid(self.sort, "applied"), "descending": valid(self.dir, "desc") == "desc",
                "page": page if isinstance(page, int) and page > 0 else 1}
