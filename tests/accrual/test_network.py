"""Tests for the metro network model: hand-checked distances against rows of stations.csv."""

import csv
from datetime import date
from pathlib import Path

import pytest

from metropoints.accrual.network import DEFAULT_CSV, Network, get_network, load_network

HEADER = "station_id,line,seq,name_zh,name_en,lat,lon,km_from_prev,opened\n"
TODAY = date(2026, 7, 1)  # every section open


@pytest.fixture(scope="module")
def net() -> Network:
    """The network built from the packaged CSV."""
    return get_network()


def test_readme_counts(net: Network) -> None:
    """README figures: 159 rows, 144 stations, 15 transfer stations (one id, several lines)."""
    with open(DEFAULT_CSV, encoding="utf-8", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 159
    assert len(net.stations) == 144
    assert sum(len(s.lines) > 1 for s in net.stations.values()) == 15


def test_station_fields_merge_rows(net: Network) -> None:
    """A transfer station has sorted lines and opens on the earliest of its rows' dates."""
    shayang = net.stations["0414"]  # line 4 row 2023-09-29, line 3 row 2026-06-30
    assert shayang.lines == (3, 4)
    assert shayang.opened == date(2023, 9, 29)
    assert shayang.name_zh == "砂阳"
    assert net.stations["0117"].lines == (1, 2)
    assert net.stations["0117"].opened == date(2010, 9, 27)


def test_epochs_are_distinct_opening_dates(net: Network) -> None:
    """Epochs are the 11 distinct opening dates in the CSV, ascending."""
    assert net.epochs() == [
        date(2010, 9, 27), date(2011, 12, 30), date(2013, 12, 30), date(2018, 4, 8),
        date(2019, 5, 25), date(2020, 4, 29), date(2021, 3, 30), date(2023, 9, 29),
        date(2024, 12, 30), date(2025, 6, 30), date(2026, 6, 30),
    ]  # fmt: skip


def test_adjacent_stations_line_1(net: Network) -> None:
    """Adjacent stations: distance is the later row's km_from_prev in metres."""
    assert net.distance_m("0101", "0102", date(2010, 9, 27)) == 1014  # 十三号街→中央大街 1.014
    assert net.distance_m("0101", "0102", TODAY) == 1014


def test_multi_stop_trip_one_line(net: Network) -> None:
    """A multi-stop trip on one line sums the km_from_prev of the rows passed."""
    # 重工街→沈阳站 on line 1: 0.954 + 1.135 + 1.395 + 1.042 + 1.539 = 6.065 km
    assert net.distance_m("0109", "0114", TODAY) == 6065


def test_transfer_trip_is_free_and_shortest(net: Network) -> None:
    """A trip changing lines at a transfer station adds both legs; the transfer itself costs nothing."""
    # 沈阳站→青年大街 on line 1: 0.978 + 1.189 + 1.116 = 3.283
    # 青年大街→市图书馆 on line 2: 0.891 + 1.287 + 1.447 = 3.625; total 6.908 km
    assert net.distance_m("0114", "0213", date(2015, 1, 1)) == 6908  # only lines 1 and 2 exist
    assert net.distance_m("0114", "0213", TODAY) == 6908  # via lines 4 + 3 would be 9.628
    # 南市场→(1.116)青年大街→(0.891)青年公园 = 2.007 km
    assert net.distance_m("0116", "0211", TODAY) == 2007


def test_distance_is_symmetric(net: Network) -> None:
    """distance(a, b) == distance(b, a) for every pair on every epoch."""
    ids = sorted(net.stations)
    for day in net.epochs():
        for a in ids:
            for b in ids:
                assert net.distance_m(a, b, day) == net.distance_m(b, a, day), (a, b, day)
    assert net.distance_m("0213", "0114", TODAY) == 6908


def test_same_station_is_zero_only_when_open(net: Network) -> None:
    """entry == exit gives 0 for an open station and None before it opened."""
    assert net.distance_m("0117", "0117", TODAY) == 0
    assert net.distance_m("0101", "0101", date(2010, 9, 26)) is None
    assert net.distance_m("0101", "0102", date(2010, 9, 26)) is None  # before the first epoch


def test_line_3_east_section_opens_2026_06_30(net: Network) -> None:
    """A station on Line 3's east section is closed on 2026-06-29 and open from 2026-06-30."""
    before, opening = date(2026, 6, 29), date(2026, 6, 30)
    for sid in ("0315", "0327"):  # 凌空, 方家栏: served only by line 3
        assert net.is_known(sid)
        assert not net.is_open(sid, before)
        assert net.is_open(sid, opening)
        assert net.distance_m(sid, "0101", before) is None
    assert net.distance_m("0314", "0315", before) is None
    assert net.distance_m("0314", "0315", opening) == 1939  # 凌空 row: 1.939


def test_transfer_station_open_before_its_new_line(net: Network) -> None:
    """A transfer station is open from its first line's date, but the new line's edges only from their own."""
    before = date(2026, 6, 29)
    assert net.is_open("0414", before)  # line 4 since 2023-09-29
    # 砂阳→工业展览馆 before line 3 east: line 4 1.928 + 0.800 (to 太原街), line 1 1.189 + 1.116 (to 青年大街),
    # line 2 0.891 + 1.287 = 7.211 km
    assert net.distance_m("0414", "0212", before) == 7211


def test_shortest_path_changes_when_section_opens(net: Network) -> None:
    """A later opening shortens a pair's distance from its opening date on, not the day before."""
    # 砂阳→工业展览馆 along line 3 east: 1.078 + 1.031 + 0.563 + 1.026 + 0.777 = 4.475 km
    assert net.distance_m("0414", "0212", date(2026, 6, 30)) == 4475
    # 沈阳北站→太原街 before line 4: line 2 0.716 + 0.921 + 1.397, line 1 1.116 + 1.189 = 5.339 km
    assert net.distance_m("0207", "0115", date(2023, 9, 28)) == 5339
    # with line 4 (沈阳北站→皇寺路→市府大路→太原街): 1.816 + 0.864 + 1.882 = 4.562 km
    assert net.distance_m("0207", "0115", date(2023, 9, 29)) == 4562


def test_unknown_station_ids(net: Network) -> None:
    """Unknown ids are not known, not open, and give no distance."""
    for sid in ("9999", "", "101", "0101 "):
        assert not net.is_known(sid)
        assert not net.is_open(sid, TODAY)
        assert net.distance_m(sid, "0101", TODAY) is None
        assert net.distance_m("0101", sid, TODAY) is None
    assert net.distance_m("9999", "9999", TODAY) is None


def test_get_network_is_cached() -> None:
    """get_network builds once per process and returns the same object."""
    assert get_network() is get_network()


def _write(tmp_path: Path, body: str) -> Path:
    """Write a small stations CSV and return its path."""
    path = tmp_path / "stations.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_small_csv_exact_metres_and_edge_dates(tmp_path: Path) -> None:
    """Metres are exact (no float sums); an edge opens on the later of its two rows' dates."""
    body = (
        "0001,1,1,A,A,0,0,,2020-01-01\n0002,1,2,B,B,0,0,0.100,2020-01-01\n0003,1,3,C,C,0,0,0.200,2021-01-01\n"
        "0001,2,1,A,A,0,0,,2020-01-01\n0003,2,2,C,C,0,0,0.250,2022-01-01\n"  # line 2: A-C direct from 2022
    )
    net = load_network(_write(tmp_path, body))
    assert net.distance_m("0001", "0003", date(2020, 12, 31)) is None
    assert net.distance_m("0001", "0003", date(2021, 1, 1)) == 300  # 0.1 + 0.2 as floats is 0.30000000000000004
    assert net.distance_m("0001", "0003", date(2022, 1, 1)) == 250  # line 2 edge, both stations open since 2021
    assert net.stations["0003"].lines == (1, 2)
    assert net.epochs() == [date(2020, 1, 1), date(2021, 1, 1), date(2022, 1, 1)]


def test_malformed_date_names_the_row(tmp_path: Path) -> None:
    """A bad opening date raises ValueError naming the CSV line."""
    path = _write(tmp_path, "0001,1,1,A,A,0,0,,2020-01-01\n0002,1,2,B,B,0,0,1.000,2020-13-01\n")
    with pytest.raises(ValueError, match=r"line 3 \(station_id='0002'\)"):
        load_network(path)


def test_missing_distance_names_the_row(tmp_path: Path) -> None:
    """An empty km_from_prev on a non-first row raises ValueError naming the CSV line."""
    path = _write(tmp_path, "0001,1,1,A,A,0,0,,2020-01-01\n0002,1,2,B,B,0,0,,2020-01-01\n")
    with pytest.raises(ValueError, match=r"line 3 .*km_from_prev is missing"):
        load_network(path)
