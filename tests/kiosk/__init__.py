"""Kiosk tests: the kiosk CLI, the kiosk feed and its ETag, the kiosk page and its QR codes."""

from __future__ import annotations

# Line 1 stations (shared/data/shenyang_metro/stations.csv): the kiosk's, a store's, another kiosk's.
KIOSK_STATION, STORE_STATION, OTHER_STATION = "0109", "0114", "0101"
