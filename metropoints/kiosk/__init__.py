"""Station kiosks: the big screens at 30 stations, their tokens, the kiosk feed and the full-screen kiosk page."""
