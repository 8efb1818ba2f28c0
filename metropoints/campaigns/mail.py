"""Mail to a merchant's owner about the review of a campaign or of a revision: approved, or rejected with the reason,
with the link to the campaign's page in the portal. Queued by the review operations in their unit of work, so a
decision rolled back mails nothing (core.mail)."""

from __future__ import annotations

from metropoints.campaigns.models import Campaign
from metropoints.core.db import db
from metropoints.core.mail import mail_user, public_link
from metropoints.core.models import User
from metropoints.marketplace.models import Merchant

# The mail's kind -> its template.
DECISION_TEMPLATES = {
    "campaign.approved": "campaigns/mail/campaign_approved.txt",
    "campaign.rejected": "campaigns/mail/campaign_rejected.txt",
    "campaign.revision_approved": "campaigns/mail/revision_approved.txt",
    "campaign.revision_rejected": "campaigns/mail/revision_rejected.txt",
}


def mail_decision(*, campaign_id: int, kind: str, reason: str) -> None:
    """Queue the mail of a review decision (a kind of DECISION_TEMPLATES) to the campaign's merchant's owner, in
    the owner's language. It flushes the session (queuing adds the mail's row), as an operation leaves it."""
    campaign = db.session.get(Campaign, campaign_id)
    merchant = db.session.get(Merchant, campaign.merchant_id)
    mail_user(db.session.get(User, merchant.owner_id), kind=kind, template=DECISION_TEMPLATES[kind],
              campaign=campaign, merchant=merchant, reason=reason,
              link=public_link("campaigns.detail", campaign_id=campaign.id))
