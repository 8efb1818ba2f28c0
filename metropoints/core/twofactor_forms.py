"""Forms of sign-in's second step, enrolment, the step-up check and the back office's account search."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class CodeForm(FlaskForm):
    """A code from the authenticator app, or a recovery code."""

    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=32)])


class StepUpForm(FlaskForm):
    """The check asked again before money or points move: the code, or the password for an account without a
    second factor. Its fields travel beside another form's, so they carry a prefix and no CSRF token of their own
    (the page's form has one)."""

    class Meta:
        """The other form's CSRF token protects the post."""

        csrf = False

    code = StringField(_l("Code"), validators=[Length(max=32)])
    password = PasswordField(_l("Password"), validators=[Length(max=200)])


class ResetSecondFactorForm(FlaskForm):
    """Why an operator takes an account's second factor away."""

    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])
