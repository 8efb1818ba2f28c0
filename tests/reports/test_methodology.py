"""The published method: GET /api/v1/methodology (no token) and the page /methodology say, per mode and rule version,
how points and CO2e are computed, with the numbers and the factor's source, in zh and en."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import force_locale

from metropoints.accrual.models import RuleVersion, TripMode
from metropoints.accrual.rules import MODE_DEFAULTS, ensure_default_rules
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import utcnow
from metropoints.reports.methodology_views import SEEDED_TEXTS

NEXT_BUS = {"points_per_km_milli": 1500, "daily_cap": 80, "mode_cap": 20, "co2e_mg_per_km": 32_500,
            "factor_name": "Shenyang bus 2027 measured factor", "factor_source": "Shenyang Public Transport Group, "
            "fleet report 2026, table 3"}


def two_bus_versions() -> RuleVersion:
    """Bus's seeded version and a second one from tomorrow; walking's seeded version (committed)."""
    ensure_default_rules(TripMode.bus)
    ensure_default_rules(TripMode.walk)
    later = RuleVersion(mode=TripMode.bus, effective_from=utcnow() + timedelta(days=1), created_by="test",
                        **NEXT_BUS)
    db.session.add(later)
    commit_unit_of_work()
    return later


def test_methodology_publishes_every_version_of_every_mode(client):
    """Without a token: every mode, metro first; a mode's versions oldest first with their numbers, caps and factor
    source (bus's seeded default, then the one from tomorrow); walking per 1,000 steps above its threshold."""
    later = two_bus_versions()
    reply = client.get("/api/v1/methodology")
    assert reply.status_code == 200 and reply.mimetype == "application/json"
    modes = reply.get_json()["modes"]
    assert [m["mode"] for m in modes] == ["metro", "bus", "bike", "walk"]
    by_mode = {m["mode"]: m["versions"] for m in modes}
    assert by_mode["bike"] == []  # no version in this database
    bus = MODE_DEFAULTS[TripMode.bus]
    first, second = by_mode["bus"]
    assert first == {"rule_version": first["rule_version"], "effective_from": "2010-01-01T08:00:00+08:00",
                     "points_rule": {"basis": "km", "points_per_km": 1.0, "points_per_1000_steps": None,
                                     "steps_threshold": None, "metres_per_step": None},
                     "daily_cap": 60, "mode_cap": None, "co2e_g_per_km": 30.0, "factor_name": bus["factor_name"],
                     "factor_source": bus["factor_source"]}
    assert second == {"rule_version": later.id, "effective_from": second["effective_from"],
                      "points_rule": {"basis": "km", "points_per_km": 1.5, "points_per_1000_steps": None,
                                      "steps_threshold": None, "metres_per_step": None},
                      "daily_cap": 80, "mode_cap": 20, "co2e_g_per_km": 32.5,
                      "factor_name": NEXT_BUS["factor_name"], "factor_source": NEXT_BUS["factor_source"]}
    starts = datetime.fromisoformat(second["effective_from"])
    assert starts == later.effective_from and starts.utcoffset() == timedelta(hours=8)
    (walk,) = by_mode["walk"]
    assert walk["points_rule"] == {"basis": "steps", "points_per_km": None, "points_per_1000_steps": 1.0,
                                   "steps_threshold": 3000, "metres_per_step": 0.7}
    assert (walk["mode_cap"], walk["co2e_g_per_km"]) == (10, 75.0)
    (metro,) = by_mode["metro"]
    assert (metro["points_rule"]["points_per_km"], metro["daily_cap"], metro["co2e_g_per_km"]) == (1.0, 60, 44.0)


def test_methodology_page_in_english(client):
    """The page lists each mode's versions with their numbers, caps, factor and source; the one in force is marked
    and the later one scheduled."""
    later = two_bus_versions()
    html = client.get("/methodology", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "How points and CO2e are computed" in html
    bus = html[html.index("<h2>Bus</h2>"):html.index("<h2>Shared bike</h2>")]
    assert "Version 1" not in bus and f"Version {later.id}" in bus
    assert "Points: 1 per km, rounded down to a whole point." in bus
    assert "Points: 1.5 per km, rounded down to a whole point." in bus
    assert "At most 20 of them from this mode." in bus and "at most 80 points a day across all modes" in bus
    assert "CO2e: 30 g per km" in bus and "CO2e: 32.5 g per km" in bus
    assert "Source: Shenyang Public Transport Group, fleet report 2026, table 3" in bus
    assert "Bus vs. city motorised baseline (platform default)" in bus
    assert bus.count("In force") == 1 and bus.count("Scheduled") == 1
    walk = html[html.index("<h2>Walking</h2>"):]
    assert "Points: 1 for every 1,000 steps above 3,000 steps a day" in walk
    assert "each step counts as 0.7 m, so 10,000 steps are 7 km" in walk
    assert "No rule version yet" in html[html.index("<h2>Shared bike</h2>"):html.index("<h2>Walking</h2>")]


def test_methodology_page_in_chinese(client):
    """The page is Chinese by default (and by the browser's language), with the same numbers."""
    two_bus_versions()
    for headers in ({}, {"Accept-Language": "zh-CN,zh;q=0.9"}):
        reply = client.get("/methodology", headers=headers)
        html = reply.get_data(as_text=True)
        assert reply.status_code == 200 and '<html lang="zh-CN">' in html
        assert "32.5" in html and "3,000" in html and "Shenyang Public Transport Group" in html


def test_seeded_texts_are_their_own_msgids(app):
    """Each text the platform seeded is looked up by a msgid equal to it, so the page translates it exactly."""
    with app.test_request_context(), force_locale("en"):
        assert {key: str(text) for key, text in SEEDED_TEXTS.items()} == {key: key for key in SEEDED_TEXTS}
