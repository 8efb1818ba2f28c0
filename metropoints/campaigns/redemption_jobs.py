"""Campaign jobs `rq cron` starts: the coupon expiry every few minutes, the image prune daily. Safe to run twice,
or in parallel."""

from __future__ import annotations

from metropoints.campaigns.redemption import expire_coupons
from metropoints.core.jobs import job


@job
def expire_coupons_job() -> int:
    """Mark the issued coupons past their validity expired (no points come back); returns how many moved."""
    return expire_coupons()


@job
def prune_images_job() -> int:
    """Delete uploaded images nothing names any more (see operations.prune_campaign_images); how many."""
    from metropoints.campaigns.operations import prune_campaign_images

    return len(prune_campaign_images())
