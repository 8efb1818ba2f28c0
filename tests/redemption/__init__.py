"""Redemption tests: buying coupons with points, cancelling them, using them at the counter, and their expiry."""

from __future__ import annotations

PASSWORD = "password123"
# Line 1 stations (shared/data/shenyang_metro/stations.csv).
STATION_A, STATION_B = "0109", "0114"
