"""Campaign jobs `rq cron` starts: the image prune, daily. Safe to run twice, or in parallel."""

from __future__ import annotations

from metropoints.campaigns.images import prune_campaign_images
from metropoints.core.jobs import job


@job
def prune_images_job() -> int:
    """Delete uploaded images nothing names any more (see images.prune_campaign_images); how many."""
    return len(prune_campaign_images())
