"""Campaigns' panels on the marketplace's pages (core/panels.py): the owner's live campaigns with their stock, and
for the back office every campaign of the merchant with its state and stock.

Reads are bounded: campaigns by merchant (its index), at most CAMPAIGNS_SHOWN of them.
"""

from __future__ import annotations

from flask import render_template
from markupsafe import Markup
from sqlalchemy import func, select

from metropoints.campaigns.catalogue import badge, live_campaigns
from metropoints.campaigns.models import Campaign, CampaignStatus
from metropoints.core.db import db
from metropoints.core.panels import add_panel
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Merchant

CAMPAIGNS_SHOWN = 50


def live_of(merchant_id: int, limit: int = CAMPAIGNS_SHOWN) -> list[Campaign]:
    """The merchant's campaigns on sale now, those whose sale ends first first."""
    rows = db.session.execute(live_campaigns(now=utcnow()).where(Campaign.merchant_id == merchant_id)
                              .order_by(Campaign.valid_until, Campaign.id).limit(limit))
    return [campaign for campaign, _merchant in rows]


def waiting_count(merchant_id: int) -> int:
    """How many of the merchant's campaigns wait for the metro team's review."""
    return int(db.session.scalar(select(func.count(Campaign.id)).where(
        Campaign.merchant_id == merchant_id, Campaign.status == CampaignStatus.submitted)) or 0)


def campaigns_of(merchant_id: int, limit: int = CAMPAIGNS_SHOWN) -> list[Campaign]:
    """The merchant's newest campaigns, in any status."""
    return list(db.session.scalars(select(Campaign).where(Campaign.merchant_id == merchant_id)
                                   .order_by(Campaign.id.desc()).limit(limit)))


def owner_dashboard_panel(*, merchant: Merchant, **_context) -> Markup:
    """The owner's live campaigns: stock left of the total, and when each sale ends."""
    return Markup(render_template("campaigns/panels/live.html", campaigns=live_of(merchant.id),
                                  waiting=waiting_count(merchant.id), limit=CAMPAIGNS_SHOWN))


def operator_merchant_panel(*, merchant: Merchant, **_context) -> Markup:
    """Every campaign of the merchant (the newest CAMPAIGNS_SHOWN), with its state as the portal shows it, and
    stock."""
    now = utcnow()
    rows = [(campaign, badge(campaign, merchant, now)) for campaign in campaigns_of(merchant.id)]
    return Markup(render_template("campaigns/panels/merchant.html", rows=rows, limit=CAMPAIGNS_SHOWN))


def register() -> None:
    """Put campaigns' panels on the marketplace's pages (idempotent)."""
    add_panel("owner_dashboard", owner_dashboard_panel, order=30)
    add_panel("operator_merchant", operator_merchant_panel, order=10)
