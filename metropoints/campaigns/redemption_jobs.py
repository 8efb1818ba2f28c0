"""Redemption jobs: the coupon expiry `rq cron` starts every few minutes. Safe to run twice, or in parallel."""

from __future__ import annotations

from metropoints.campaigns.redemption import expire_coupons
from metropoints.core.jobs import job


@job
def expire_coupons_job() -> int:
    """Mark the issued coupons past their validity expired (no points come back); returns how many moved."""
    return expire_coupons()
