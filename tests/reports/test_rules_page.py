"""The accrual rules page: versions listed with the one in force marked; the form adds a version, audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from metropoints.accrual.models import RuleVersion
from metropoints.core.db import db
from metropoints.core.models import AuditEntry

GOOD = {"points_per_km": "1.5", "daily_cap": "80", "co2e_factor": "45.5", "factor_name": "Liaoning grid 2026",
        "note": "Greener grid mix"}


def versions() -> list[RuleVersion]:
    """Every rule version, oldest first, fresh from the database."""
    db.session.expire_all()
    return list(db.session.scalars(select(RuleVersion).order_by(RuleVersion.id)))


def test_lists_versions_with_the_one_in_force(operator, get_en):
    """The default version is listed, described, and marked as in force."""
    html = get_en("/backoffice/rules").get_data(as_text=True)
    assert "Version 1 — points per km: 1 · daily cap: 60 points · CO2e: 44 g per km" in html
    assert 'class="rule-version in-force"' in html and "In force" in html


def test_form_adds_a_version_that_is_shown_and_audited(operator, post_en, get_en):
    """A valid form adds a version in force from now, shows it as in force, and the audit log names the operator
    and the reason."""
    reply = post_en("/backoffice/rules", GOOD)
    assert reply.status_code == 302 and reply.headers["Location"] == "/backoffice/rules"
    new = versions()[-1]
    assert (new.id, new.points_per_km_milli, new.daily_cap, new.co2e_mg_per_km) == (2, 1500, 80, 45_500)
    assert (new.factor_name, new.created_by, new.note) == ("Liaoning grid 2026", "ops@metro.example",
                                                           "Greener grid mix")
    html = get_en("/backoffice/rules").get_data(as_text=True)
    assert "Rule version 2 added." in html
    in_force = html[html.index('class="rule-version in-force"'):]
    assert "Version 2 —" in in_force[:400]
    assert "points per km: 1.5 · daily cap: 80 points · CO2e: 45.5 g per km (Liaoning grid 2026)" in html
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "rules.new_version"))
    assert (entry.actor_label, entry.subject, entry.reason) == ("ops@metro.example", "rule_version:2",
                                                                "Greener grid mix")


def test_effective_from_is_shenyang_time(operator, post_en, get_en):
    """A start typed in the form is wall time in Shenyang; a future start is listed as scheduled, not in force."""
    reply = post_en("/backoffice/rules", {**GOOD, "effective_from": "2099-01-01T08:00"})
    assert reply.status_code == 302
    assert versions()[-1].effective_from == datetime(2099, 1, 1, 0, 0, tzinfo=UTC)
    html = get_en("/backoffice/rules").get_data(as_text=True)
    assert 'class="rule-version scheduled"' in html and "from 2099-01-01 08:00:00 (Asia/Shanghai)" in html
    in_force = html[html.index('class="rule-version in-force"'):]
    assert "Version 1 —" in in_force[:400]


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"points_per_km": "1.2345"}, "points_per_km", "points_per_km takes at most three decimals."),
    ({"points_per_km": "-1"}, "points_per_km", "points_per_km must be between 0 and 1000."),
    ({"co2e_factor": "20000"}, "co2e_factor", "co2e_factor must be between 0 and 10000."),
    ({"daily_cap": "1000000"}, "daily_cap", "daily_cap must be a whole number from 0 to 100000."),
    ({"factor_name": "   "}, "factor_name", "Name the source of the CO2e factor."),
    ({"effective_from": "2020-01-01T08:00"}, "effective_from", "A rule version cannot start in the past."),
    ({"points_per_km": "lots"}, "points_per_km", "Not a valid decimal value."),
    ({"daily_cap": "1.5"}, "daily_cap", "Not a valid integer value."),
    ({"note": ""}, "note", "This field is required."),
])
def test_bad_values_are_form_errors(operator, post_en, change, field, message):
    """A value the rules refuse is shown on its field (422); nothing is added and nothing audited."""
    reply = post_en("/backoffice/rules", {**GOOD, **change})
    html = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert f'<p class="error" data-field="{field}">{message}</p>' in html
    assert html.count('aria-invalid="true"') == 1 and f'aria-invalid="true" id="{field}"' in html
    assert len(versions()) == 1
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 0
