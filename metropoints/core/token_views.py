"""The back office's API tokens: partners', kiosks', staff's and riders' bearer tokens listed by kind, newest first,
with whose each is, when it was made, expires and was last used; an operator revokes one with a reason, and names a
partner's, kiosk's or staff token on its label page (both audited). Operators only."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from metropoints.core.errors import DomainError, NotFound
from metropoints.core.models import Role, TokenKind
from metropoints.core.operations import (
    LABELLED_KINDS,
    MAX_REVOKE_REASON,
    MAX_TOKEN_LABEL,
    revoke_token,
    set_token_label,
)
from metropoints.core.portal import (
    add_nav,
    form_page,
    message_for,
    portal_user,
    put_on_form,
    register_error_messages,
    role_required,
)
from metropoints.core.timeutil import utcnow
from metropoints.core.token_queries import LABEL_PREFIXES, MAX_SEARCH, TokenRow, token_page, token_row
from metropoints.core.urls import id_arg

bp = Blueprint("tokens", __name__, url_prefix="/backoffice/tokens")

add_nav("tokens.index", _l("API tokens"), Role.operator, order=85)
register_error_messages("tokens", {
    "token_revoked": _l("This token was already revoked."),
    "not_found": _l("This token does not exist."),
    "invalid": _l("Say why the token is revoked."),
    "label_empty": _l("Give the token a label."),
    "label_too_long": _l("The label has at most %(count)d characters.", count=MAX_TOKEN_LABEL),
    "label_control_characters": _l("The label may not contain control characters such as line breaks or tabs."),
    "label_not_editable": _l("Only partner, kiosk and staff tokens can be given a label."),
})

KIND_LABELS = {TokenKind.partner: _l("Trip-feed partners"), TokenKind.kiosk: _l("Kiosks"),
               TokenKind.staff: _l("Staff (POS)"), TokenKind.rider: _l("Riders")}
SEARCH_HINTS = {TokenKind.partner: _l("Partner name"), TokenKind.kiosk: _l("Station id"),
                TokenKind.staff: _l("E-mail"), TokenKind.rider: _l("Phone")}
STATE_LABELS = {"live": _l("In use"), "expired": _l("Expired"), "revoked": _l("Revoked")}
# The labels the platform writes on tokens it issues (core.operations.issue_token's callers), in words.
LABEL_WORDS = {"login": _l("Rider app sign-in"), "register": _l("Rider app registration"),
               "pos": _l("POS sign-in"), "demo": _l("Demo data")}
REVOKED_BY_WORDS = {"holder": _l("The holder, signing out"), "cli": _l("Command line")}


class RevokeForm(FlaskForm):
    """Revoke a token: why (written to the token and the audit log)."""

    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=MAX_REVOKE_REASON)])


class LabelForm(FlaskForm):
    """A token's label (which device or key it is); the rules are core.operations.check_token_label's, so a bad
    label gets that rule's message on the field."""

    label = StringField(_l("Label"))


def label_words(row: TokenRow) -> str:
    """A token's label as people read it: the platform's own labels in words; the label a partner's or kiosk's token
    was made with, which names what the subject column already shows, left out (one an operator wrote is shown)."""
    if row.kind in LABEL_PREFIXES and row.label == LABEL_PREFIXES[row.kind] + row.subject:
        return ""
    words = LABEL_WORDS.get(row.label)
    return str(words) if words is not None else row.label


def revoked_by_words(revoked_by: str) -> str:
    """Who revoked a token, in words (an operator's e-mail as it is)."""
    words = REVOKED_BY_WORDS.get(revoked_by)
    return str(words) if words is not None else revoked_by


def _kind() -> TokenKind:
    """`?kind=`: partner unless another kind is asked for (an unknown one shows partners too)."""
    try:
        return TokenKind(request.args.get("kind", TokenKind.partner.value))
    except ValueError:
        return TokenKind.partner


@bp.get("/")
@role_required(Role.operator)
def index():
    """One kind's tokens, newest first, a page at a time (`?before=` an id), narrowed by `?q=` (a phone, an e-mail,
    a partner's name, a station id); each live one with a form to revoke it."""
    kind = _kind()
    search = request.args.get("q", "").strip()[:MAX_SEARCH]
    before = id_arg("before")
    rows, more = token_page(kind=kind, search=search, before_id=before)
    query = {"kind": kind.value, **({"q": search} if search else {})}
    next_url = url_for("tokens.index", **query, before=rows[-1].id) if more else None
    return render_template("core/tokens.html", rows=rows, kind=kind, search=search, before=before, query=query,
                           next_url=next_url, now=utcnow(), form=RevokeForm(), kind_labels=KIND_LABELS,
                           search_hint=SEARCH_HINTS[kind], state_labels=STATE_LABELS, label_words=label_words,
                           revoked_by_words=revoked_by_words, labelled_kinds=LABELLED_KINDS)


@bp.post("/<id:token_id>/revoke")
@role_required(Role.operator)
def revoke(token_id: int):
    """Revoke a token with a reason: refused from the holder's next request on, audited."""
    form = RevokeForm()
    back = request.form.get("back", "")
    target = back if back.startswith("/backoffice/tokens") else url_for("tokens.index")
    if not form.validate_on_submit():
        flash(_("Say why the token is revoked."))
        return redirect(target)
    try:
        revoke_token(token_id=token_id, actor=portal_user(), reason=form.reason.data)
    except DomainError as refusal:
        flash(message_for(refusal))
        return redirect(target)
    flash(_("The token is revoked: its next request is refused."))
    return redirect(target)


@bp.route("/<id:token_id>/label", methods=["GET", "POST"])
@role_required(Role.operator)
def label(token_id: int) -> Response | tuple[str, int]:
    """Name a partner's, kiosk's or staff token (at most as long as the column); a bad label is a message on the
    field (422), a good one is saved, audited, and the list shown again."""
    row = token_row(token_id)
    if row is None or row.kind not in LABELLED_KINDS:
        raise NotFound()
    form = LabelForm() if request.method == "POST" else LabelForm(data={"label": row.label})
    if form.validate_on_submit():
        try:
            set_token_label(token_id=token_id, actor=portal_user(), label=form.label.data)
        except DomainError as error:
            put_on_form(form, error)
        else:
            flash(_("The token's label is saved."))
            return redirect(url_for("tokens.index", kind=row.kind.value))
    return form_page("core/token_label.html", form, row=row, max_length=MAX_TOKEN_LABEL,
                     kind_label=KIND_LABELS[row.kind])
