"""Forms of the core pages, and the action form every package's buttons post."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length


class LoginForm(FlaskForm):
    """Portal login for operators, merchant owners and cashiers."""

    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class ForgotPasswordForm(FlaskForm):
    """Ask for a password reset link by e-mail."""

    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])


class NewPasswordForm(FlaskForm):
    """A new password, typed twice (through a reset link)."""

    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(_l("New password again"),
                            validators=[DataRequired(), EqualTo("password", message=_l("The two passwords differ."))])


class ChangePasswordForm(NewPasswordForm):
    """A signed-in account's new password, after its current one."""

    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=200)])


class ProfileForm(FlaskForm):
    """The account's name and the language of its mail."""

    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=64)])
    locale = SelectField(_l("Language of e-mail"), choices=[SelectChoice("zh", "中文"), SelectChoice("en", "English")])
