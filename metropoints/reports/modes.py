"""The back office's green-modes pages: the review queue of trips held for review, and the bus lines. Operators only;
the rules are accrual's (accrual.review, accrual.buslines), these views only call them."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from metropoints.accrual.buslines import bus_lines, set_bus_line
from metropoints.accrual.errors import BadBusLine, NotUnderReview
from metropoints.accrual.models import HoldReason, TripMode
from metropoints.accrual.review import count_under_review, decide_review, review_queue
from metropoints.core.db import MAX_ID
from metropoints.core.errors import InvalidInput, NotFound
from metropoints.core.models import Role
from metropoints.core.portal import add_nav, role_required
from metropoints.core.signin import step_up_required
from metropoints.reports.forms import BusLineForm, ReviewDecisionForm

bp = Blueprint("modes", __name__, url_prefix="/backoffice")

add_nav("modes.reviews", _l("Trip reviews"), Role.operator, order=82)
add_nav("modes.bus_lines_page", _l("Bus lines"), Role.operator, order=84)

PAGE_SIZE = 50
REASON_LABELS = {HoldReason.too_many_trips.value: _l("More trips that day than the limit"),
                 HoldReason.back_and_forth.value: _l("Back and forth between the same two stations"),
                 HoldReason.overlapping.value: _l("Overlaps another trip of the rider in time")}
MODE_LABELS = {TripMode.metro.value: _l("Metro"), TripMode.bus.value: _l("Bus"),
               TripMode.bike.value: _l("Shared bike"), TripMode.walk.value: _l("Walking")}


def _after() -> tuple[date, int] | None:
    """The queue's cursor, `?after=YYYY-MM-DD:ID`; anything else starts from the top."""
    raw = request.args.get("after", "")
    day, _sep, pk = raw.partition(":")
    try:
        return (date.fromisoformat(day), int(pk)) if pk.isdigit() and 0 < int(pk) <= MAX_ID else None
    except ValueError:
        return None


@bp.route("/reviews", methods=["GET", "POST"])
@role_required(Role.operator)
@step_up_required
def reviews():
    """Trips held for review, oldest day first, each with a form to credit or refuse it with a reason."""
    form = ReviewDecisionForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                decide_review(trip_pk=form.trip_pk.data, decision=form.decision.data, reason=form.reason.data,
                              actor=current_user)
            except NotUnderReview:
                flash(_("That trip is no longer waiting for review."))
                return redirect(url_for("modes.reviews"))
            except NotFound:
                flash(_("No such trip."))
                return redirect(url_for("modes.reviews"))
            except InvalidInput as error:
                form.reason.errors = [*form.reason.errors, error.message]
                status = 422
            else:
                flash(_("Trip credited.") if form.decision.data == "credited" else _("Trip refused."))
                return redirect(url_for("modes.reviews"))
        else:
            status = 422
    trips = review_queue(limit=PAGE_SIZE, after=_after())
    next_after = f"{trips[-1].service_day.isoformat()}:{trips[-1].id}" if len(trips) == PAGE_SIZE else None
    return render_template("reports/reviews.html", trips=trips, form=form, waiting=count_under_review(),
                           reasons=REASON_LABELS, modes=MODE_LABELS, next_after=next_after,
                           failed_pk=form.trip_pk.data if status == 422 else None), status


@bp.route("/bus-lines", methods=["GET", "POST"])
@role_required(Role.operator)
def bus_lines_page():
    """The bus lines the feed may name, with their average trip distance, and a form to add or change one."""
    form = BusLineForm()
    if form.validate_on_submit():
        try:
            line = set_bus_line(code=form.code.data, name=form.name.data or "", avg_trip_m=form.avg_trip_m.data,
                                actor=current_user)
        except BadBusLine as error:
            field = getattr(form, str(error.fields.get("field")), None)
            (field.errors if field is not None else form.form_errors).append(error.message)
        else:
            flash(_("Bus line %(code)s saved.", code=line.code))
            return redirect(url_for("modes.bus_lines_page"))
    return render_template("reports/bus_lines.html", form=form, lines=bus_lines()), 422 if form.errors else 200
