"""Redemption jobs `rq cron` starts: the coupon expiry every few minutes. Safe to run twice, or in parallel."""

from __future__ import annotations

from metropoints.core.jobs import job
from metropoints.redemption.operations import expire_coupons


@job
def expire_coupons_job() -> int:
    """Mark the issued coupons past their validity expired (no points come back); returns how many moved."""
    return expire_coupons()
