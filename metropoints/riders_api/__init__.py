"""JSON for the rider apps, the kiosks, the partner trip feeds and POS terminals."""
