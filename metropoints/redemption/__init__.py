"""Coupons: redeem with points, cancel, use at the counter, expire; the counter page and the owner's activity."""
