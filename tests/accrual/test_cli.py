"""The operator command line: partners, trip files, rules, points, the network, operators, demo data."""

from __future__ import annotations

import csv
from datetime import timedelta

from sqlalchemy import func, select

from metropoints.accrual.models import Partner, RuleVersion, TripRejection
from metropoints.core.db import db
from metropoints.core.models import ApiToken, Rider, Role, Station, User
from metropoints.core.operations import hash_token
from metropoints.kiosk.models import Kiosk
from tests.helpers import noon_yesterday, trip, write_trip_csv


def test_partners_create_prints_a_working_token(runner):
    """`flask partners create NAME` stores the partner and prints its token once, on the last line."""
    result = runner.invoke(args=["partners", "create", "alipay"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    stored = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    partner = db.session.scalar(select(Partner))
    assert stored.subject_id == partner.id and partner.name == "alipay"
    assert runner.invoke(args=["partners", "create", "alipay"]).exit_code == 1  # the name is taken


def test_trips_import_inline_reports_counts_and_rejections(runner, create_rider, tmp_path):
    """`flask trips import` without Redis credits chunk by chunk, shows progress, and writes the refused rows."""
    create_rider(links=[("afc", "card-1")])
    runner.invoke(args=["partners", "create", "afc-feed"])
    path, rejected = tmp_path / "trips.csv", tmp_path / "rejected.csv"
    base = noon_yesterday()
    rows = [trip(f"c{i}", ref="card-1" if i < 3 else f"card-x{i}", exited_at=base + timedelta(minutes=i))
            for i in range(250)]
    write_trip_csv(path, [*rows, {**trip("broken"), "exit_station": "0101", "entry_station": "0101"}])
    result = runner.invoke(args=["trips", "import", str(path), "--partner", "afc-feed", "--chunk-rows", "100",
                                 "--rejected-out", str(rejected)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert any(line.startswith("100/251 rows") for line in lines)  # progress after the first chunk
    assert lines[-1].endswith("credited 3, capped 0, duplicates 0, held 247, rejected 1")
    with rejected.open() as report:
        rows = list(csv.DictReader(report))
    assert [(r["line"], r["trip_id"], r["reason"]) for r in rows] == [("252", "broken", "same_station")]
    assert db.session.scalar(select(func.count()).select_from(TripRejection)) == 1


def test_trips_import_refuses_a_file_without_the_columns(runner, tmp_path):
    """A file whose header lacks feed columns is refused with the missing names; nothing is stored."""
    runner.invoke(args=["partners", "create", "afc-feed"])
    path = tmp_path / "bad.csv"
    path.write_text("trip_id,source\n1,afc\n")
    result = runner.invoke(args=["trips", "import", str(path), "--partner", "afc-feed"])
    assert result.exit_code == 1 and "rider_ref" in result.output


def test_rules_set_and_list(runner):
    """`flask rules set` adds a version; `flask rules list` shows every version; a bad value is refused."""
    result = runner.invoke(args=["rules", "set", "--points-per-km", "1.5", "--daily-cap", "80", "--co2e-factor",
                                 "46.7", "--factor-name", "Shenzhen 2021"])
    assert result.exit_code == 0, result.output
    assert "1.5 pt/km, cap 80/day, 46.7 g CO2e/km" in result.output
    assert db.session.scalar(select(func.count()).select_from(RuleVersion)) == 2
    listed = runner.invoke(args=["rules", "list"]).output.strip().splitlines()
    assert len(listed) == 2 and listed[0].startswith("v1 ")
    bad = runner.invoke(args=["rules", "set", "--points-per-km", "x", "--daily-cap", "1", "--co2e-factor", "1",
                              "--factor-name", "f"])
    assert bad.exit_code == 1 and "bad_rule" in bad.output


def test_points_adjust_and_expire(runner, create_rider):
    """`flask points adjust` needs a reason and posts an entry; `flask points expire` is idempotent."""
    rider = create_rider()
    result = runner.invoke(args=["points", "adjust", str(rider.id), "--points", "12", "--reason", "gate fault"])
    assert result.exit_code == 0 and result.output.strip().endswith("balance 12")
    refused = runner.invoke(args=["points", "adjust", str(rider.id), "--points", "-50", "--reason", "oops"])
    assert refused.exit_code == 1 and "insufficient_points" in refused.output
    for _ in range(2):
        assert runner.invoke(args=["points", "expire", "--year", "2025"]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(Rider, rider.id).points_balance == 12  # earned this year: nothing to expire


def test_operators_network_and_demo(runner):
    """`flask operators create`, `flask network load` and `flask demo load` (twice: nothing doubles)."""
    result = runner.invoke(args=["operators", "create", "ops@metro.example", "--password", "longenough"])
    assert result.exit_code == 0 and db.session.scalar(select(User.role)) == Role.operator
    assert runner.invoke(args=["operators", "create", "ops@metro.example", "--password", "x"]).exit_code == 1
    assert runner.invoke(args=["network", "load"]).output.strip() == "144 stations loaded"
    assert db.session.scalar(select(func.count()).select_from(Station)) == 144
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "login" in first.output.strip().splitlines()[-1]
    riders = db.session.scalar(select(func.count()).select_from(Rider))
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    assert db.session.scalar(select(func.count()).select_from(Rider)) == riders == 3
    assert db.session.scalar(select(func.count()).select_from(Kiosk)) == 1  # the second run gave it a new token


def test_trips_import_refuses_a_file_that_is_not_text(runner, tmp_path):
    """A binary or broken file is refused with a clear message (no traceback), and nothing is credited."""
    runner.invoke(args=["partners", "create", "afc-feed"])
    path = tmp_path / "photo.csv"
    path.write_bytes(b"trip_id,source\n\xff\xd8\xff\xe0 not text")
    result = runner.invoke(args=["trips", "import", str(path), "--partner", "afc-feed"])
    assert result.exit_code == 1 and "invalid: The file is not UTF-8 CSV at line" in result.output
