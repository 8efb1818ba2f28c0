"""Shenyang Metro network: stations, opening dates and precomputed shortest track distances.

Distances are integer metres (the source gives km to 3 decimals). A transfer station is one node and
transfers are free. For every network epoch (each distinct opening date) all-pairs shortest distances are
computed once with Dijkstra, so a trip lookup is a bisect over the epochs plus two dict lookups.
"""

from __future__ import annotations

import csv
import functools
import heapq
import os
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select

from metropoints.core import models as core_models
from metropoints.core.db import db

DEFAULT_CSV = Path(__file__).resolve().parent.parent / "data" / "shenyang_metro" / "stations.csv"


@dataclass(frozen=True, slots=True)
class Station:
    """A physical station; a transfer station is one Station serving several lines."""

    station_id: str
    name_zh: str
    name_en: str
    lat: float
    lon: float
    lines: tuple[int, ...]
    opened: date


@dataclass(frozen=True, slots=True)
class _Row:
    """One parsed CSV row: a station's position on one line."""

    station_id: str
    line: int
    seq: int
    km_m: int | None
    opened: date


class Network:
    """The metro network with all-pairs shortest distances precomputed for every epoch."""

    def __init__(self, stations: dict[str, Station], edges: list[tuple[str, str, int, date]]) -> None:
        """Build from stations and line edges (a, b, metres, date the edge opened); precompute all distances."""
        self.stations: dict[str, Station] = stations
        self._epochs: list[date] = sorted({s.opened for s in stations.values()} | {e[3] for e in edges})
        # _tables[i][a][b]: shortest metres from a to b on the network of epoch i; absent = unreachable/closed.
        self._tables: list[dict[str, dict[str, int]]] = [self._all_pairs(edges, day) for day in self._epochs]

    def _all_pairs(self, edges: list[tuple[str, str, int, date]], day: date) -> dict[str, dict[str, int]]:
        """All-pairs shortest distances (Dijkstra from every open station) over the network as of ``day``."""
        adjacency: dict[str, dict[str, int]] = {sid: {} for sid, st in self.stations.items() if st.opened <= day}
        for a, b, metres, opened in edges:
            if opened <= day and a in adjacency and b in adjacency:
                best = min(metres, adjacency[a].get(b, metres))
                adjacency[a][b] = adjacency[b][a] = best
        table: dict[str, dict[str, int]] = {}
        for source in adjacency:
            dist: dict[str, int] = {source: 0}
            heap = [(0, source)]
            while heap:
                d, node = heapq.heappop(heap)
                if d > dist[node]:
                    continue
                for neighbour, metres in adjacency[node].items():
                    nd = d + metres
                    if nd < dist.get(neighbour, nd + 1):
                        dist[neighbour] = nd
                        heapq.heappush(heap, (nd, neighbour))
            table[source] = dist
        return table

    def is_known(self, station_id: str) -> bool:
        """True when the station id exists in the network data (open or not)."""
        return station_id in self.stations

    def is_open(self, station_id: str, on: date) -> bool:
        """True when the station exists and at least one of its lines had opened there by ``on``."""
        station = self.stations.get(station_id)
        return station is not None and station.opened <= on

    def distance_m(self, entry: str, exit: str, on: date) -> int | None:
        """Shortest track distance in metres on ``on``; None if unknown, not open or unreachable; 0 if same."""
        index = bisect_right(self._epochs, on) - 1
        if index < 0:
            return None
        row = self._tables[index].get(entry)
        return None if row is None else row.get(exit)

    def epochs(self) -> list[date]:
        """The distinct opening dates (network epochs), ascending."""
        return list(self._epochs)


def _parse_row(number: int, raw: dict[str, str]) -> _Row:
    """Parse one CSV row; raise ValueError naming the row (file line number) when it is malformed."""
    where = f"stations.csv line {number} (station_id={raw.get('station_id')!r})"
    try:
        line, seq = int(raw["line"]), int(raw["seq"])
        float(raw["lat"]), float(raw["lon"])
        opened = date.fromisoformat(raw["opened"].strip())
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: bad line/seq/lat/lon/opened: {exc}") from exc
    km = (raw.get("km_from_prev") or "").strip()
    if not km:
        if seq != 1:
            raise ValueError(f"{where}: km_from_prev is missing on a non-first row (seq {seq})")
        return _Row(raw["station_id"], line, seq, None, opened)
    try:
        metres = Decimal(km) * 1000
    except InvalidOperation as exc:
        raise ValueError(f"{where}: bad km_from_prev {km!r}") from exc
    if not metres.is_finite() or metres != metres.to_integral_value() or metres <= 0:
        raise ValueError(f"{where}: km_from_prev {km!r} must be positive with at most 3 decimals")
    return _Row(raw["station_id"], line, seq, int(metres), opened)


def load_network(path: str | os.PathLike[str] | None = None) -> Network:
    """Parse the CSV (default: the packaged file, located relative to this module) and precompute all distances."""
    rows: list[_Row] = []
    first: dict[str, dict[str, str]] = {}
    with open(DEFAULT_CSV if path is None else path, encoding="utf-8", newline="") as handle:
        for number, raw in enumerate(csv.DictReader(handle), start=2):
            row = _parse_row(number, raw)
            named = first.setdefault(row.station_id, raw)
            if named["name_zh"] != raw["name_zh"]:
                raise ValueError(f"stations.csv line {number}: station {row.station_id} has two names")
            rows.append(row)
    by_line: dict[int, list[_Row]] = defaultdict(list)
    for row in rows:
        by_line[row.line].append(row)
    edges: list[tuple[str, str, int, date]] = []
    for line, line_rows in by_line.items():
        line_rows.sort(key=lambda r: r.seq)
        if [r.seq for r in line_rows] != list(range(1, len(line_rows) + 1)):
            raise ValueError(f"stations.csv: line {line} seq values are not 1..{len(line_rows)}")
        for prev, cur in pairwise(line_rows):
            assert cur.km_m is not None  # guaranteed by _parse_row for seq > 1
            edges.append((prev.station_id, cur.station_id, cur.km_m, max(prev.opened, cur.opened)))
    own_rows: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        own_rows[row.station_id].append(row)
    stations: dict[str, Station] = {}
    for sid, raw in first.items():
        own = own_rows[sid]
        stations[sid] = Station(
            station_id=sid,
            name_zh=raw["name_zh"],
            name_en=raw["name_en"],
            lat=float(raw["lat"]),
            lon=float(raw["lon"]),
            lines=tuple(sorted({r.line for r in own})),
            opened=min(r.opened for r in own),
        )
    return Network(stations, edges)


@functools.cache
def get_network() -> Network:
    """Process-wide cached Network built from the packaged CSV (functools.cache)."""
    return load_network()


def sync_stations() -> int:
    """Upsert every station of the packaged network into the stations table."""
    network = get_network()
    existing = {s.station_id: s for s in db.session.scalars(select(core_models.Station))}
    for st in network.stations.values():
        row = existing.get(st.station_id) or core_models.Station(station_id=st.station_id)
        row.name_zh, row.name_en, row.lat, row.lon = st.name_zh, st.name_en, st.lat, st.lon
        row.lines, row.opened = ",".join(str(n) for n in st.lines), st.opened
        db.session.add(row)
    db.session.flush()
    return len(network.stations)
