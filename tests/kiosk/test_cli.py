"""`flask kiosks create` and `flask kiosks list`: a kiosk bound to a station, its token printed once."""

from __future__ import annotations

from sqlalchemy import func, select

from metropoints.core.db import db
from metropoints.core.models import ApiToken, AuditEntry, TokenKind
from metropoints.core.operations import hash_token
from metropoints.kiosk.models import Kiosk
from tests.kiosk import KIOSK_STATION, OTHER_STATION


def test_create_prints_a_token_that_reads_the_feed(runner, read_feed):
    """The command stores a kiosk at the station with a kiosk token bound to it, prints the token on its last
    line (only its hash is stored), audits it, and the token reads that station's feed."""
    result = runner.invoke(args=["kiosks", "create", KIOSK_STATION, "--label", "Exit B concourse"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    kiosk = db.session.scalars(select(Kiosk)).one()
    assert (kiosk.station_id, kiosk.label) == (KIOSK_STATION, "Exit B concourse")
    stored = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    assert (stored.kind, stored.subject_id, stored.expires_at) == (TokenKind.kiosk, kiosk.id, None)
    assert token not in {t.token_hash for t in db.session.scalars(select(ApiToken))}
    audit = db.session.scalars(select(AuditEntry)).one()
    assert (audit.action, audit.subject, audit.actor_label) == ("kiosk.create", f"kiosk:{kiosk.id}", "cli")
    reply = read_feed(token)
    assert reply.status_code == 200 and reply.get_json()["station"]["station_id"] == KIOSK_STATION


def test_create_refuses_an_unknown_station(runner):
    """A station that is not on the network is a CLI error (exit 1) and creates nothing."""
    for station in ("9999", "", "x" * 40):
        result = runner.invoke(args=["kiosks", "create", station])
        assert result.exit_code == 1 and "not_found" in result.output, result.output
    assert db.session.scalar(select(func.count(Kiosk.id))) == 0
    assert db.session.scalar(select(func.count(ApiToken.id))) == 0


def test_create_refuses_a_label_too_long(runner):
    """The label fits its column: a longer one is refused, not cut."""
    result = runner.invoke(args=["kiosks", "create", KIOSK_STATION, "--label", "x" * 121])
    assert result.exit_code == 1 and "invalid" in result.output
    assert db.session.scalar(select(func.count(Kiosk.id))) == 0


def test_list_shows_every_kiosk(runner, create_kiosk):
    """`flask kiosks list` prints one line per kiosk with its station and live tokens; the count last."""
    first, _ = create_kiosk(KIOSK_STATION, label="north hall")
    second, _ = create_kiosk(OTHER_STATION)
    result = runner.invoke(args=["kiosks", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "2 kiosks"
    assert [line.split("\t")[:2] for line in lines[:-1]] == [[str(second.id), OTHER_STATION],
                                                             [str(first.id), KIOSK_STATION]]
    assert "north hall" in lines[1] and "1 token(s)" in lines[1]
