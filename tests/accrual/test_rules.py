"""Accrual rule versions: new versions from a moment on, old credits keep theirs, nothing retroactive."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from metropoints.accrual.errors import BadRule
from metropoints.accrual.models import Trip
from metropoints.accrual.operations import receive_trips
from metropoints.accrual.rules import create_rule_version, current_rules
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import AuditEntry
from metropoints.core.timeutil import utcnow
from tests.helpers import trip


def test_new_version_applies_from_its_start_and_old_credits_keep_theirs(app, create_rider, create_partner):
    """Trips exiting after a new version's start use it; trips credited before keep the version they had."""
    rider = create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    receive_trips(partner=partner, payload={"trips": [trip("before", exited_at=utcnow() - timedelta(hours=2))]})
    commit_unit_of_work()
    version = create_rule_version(points_per_km="2.5", daily_cap=100, co2e_factor_g_per_km="46.7",
                                  factor_name="Shenzhen methodology 2021", actor_label="ops@metro")
    commit_unit_of_work()
    assert current_rules().id == version.id
    receive_trips(partner=partner, payload={"trips": [trip("after", exited_at=utcnow())]})
    commit_unit_of_work()
    rows = {t.trip_id: t for t in db.session.scalars(select(Trip))}
    assert (rows["before"].rule_version_id, rows["before"].points, rows["before"].co2e_grams) == (1, 6, 267)
    # 6.065 km x 2.5 = 15.16 -> 15 points; x 46.7 g = 283.2 -> 283 g
    assert (rows["after"].rule_version_id, rows["after"].points, rows["after"].co2e_grams) == (version.id, 15, 283)
    assert rider.id
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "rules.new_version"))
    assert audit.actor_label == "ops@metro"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"points_per_km": "-1"}, "points_per_km"),
    ({"points_per_km": "1.0001"}, "points_per_km"),
    ({"points_per_km": "lots"}, "points_per_km"),
    ({"daily_cap": -5}, "daily_cap"),
    ({"co2e_factor_g_per_km": "nan"}, "co2e_factor"),
    ({"factor_name": " "}, "factor_name"),
    ({"effective_from": utcnow() - timedelta(days=1)}, "effective_from"),
])
def test_bad_rule_versions_are_refused(app, kwargs, field):
    """A rule version with a negative, over-precise or non-numeric value, no factor source, or a past start."""
    values = {"points_per_km": "1", "daily_cap": 60, "co2e_factor_g_per_km": "44", "factor_name": "x",
              "actor_label": "t", **kwargs}
    with pytest.raises(BadRule) as caught:
        create_rule_version(**values)
    assert caught.value.fields["field"] == field


def test_rule_versions_trips_and_batches_cannot_be_deleted(app, create_rider, create_partner):
    """What trips and ledger entries point at stays: rule versions are never edited or deleted, trips and
    batches never deleted (the database refuses)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from metropoints.core.db import rollback_unit_of_work

    create_rider(links=[("afc", "card-1")])
    partner, _ = create_partner()
    receive_trips(partner=partner, payload={"trips": [trip("t1")]})
    commit_unit_of_work()
    for statement in ("UPDATE rule_versions SET daily_cap = 1", "DELETE FROM rule_versions",
                      "DELETE FROM trips", "DELETE FROM trip_batches"):
        with pytest.raises(DBAPIError, match=r"never|kept"):
            db.session.execute(text(statement))
        rollback_unit_of_work()
