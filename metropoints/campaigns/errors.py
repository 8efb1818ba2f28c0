"""Typed refusals of the campaign rules; pages show them as flash messages or form errors, the API as JSON."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from metropoints.core.errors import Conflict, Forbidden, InvalidInput, NotFound


class CampaignNotFound(NotFound):
    """No such campaign, or not one of the caller's merchant (we do not say which)."""

    default_message = _l("No such campaign.")


class RevisionNotFound(NotFound):
    """No such revision."""

    default_message = _l("No such revision.")


class NotMerchantOwner(Forbidden):
    """The acting user owns no merchant."""

    default_message = _l("Only a merchant's owner may manage its campaigns.")


class CampaignLocked(Conflict):
    """The campaign may not be edited in its current status (submitted for review, or ended)."""

    code = "campaign_locked"
    default_message = _l("This campaign cannot be edited now: it is under review or has ended.")


class IllegalTransition(Conflict):
    """A status change the transition table does not allow (e.g. approving a draft)."""

    code = "illegal_transition"
    default_message = _l("This campaign cannot make that change from its current status.")


class MerchantNotApproved(Conflict):
    """Only an approved merchant may submit campaigns for review."""

    code = "merchant_not_approved"
    default_message = _l("Your merchant account must be approved before campaigns can be submitted.")


class RevisionNotPending(Conflict):
    """The revision has already been decided."""

    code = "revision_not_pending"
    default_message = _l("This revision has already been decided.")


class RevisionWithdrawn(RevisionNotPending):
    """A decision on changes the merchant took back before the metro team decided."""

    code = "revision_withdrawn"
    default_message = _l("The merchant has withdrawn these changes: there is nothing left to decide.")


class SubmissionWithdrawn(IllegalTransition):
    """A decision on a campaign the merchant took back from review (a draft again)."""

    code = "submission_withdrawn"
    default_message = _l("The merchant has withdrawn this campaign from review: there is nothing left to decide.")


class NothingToWithdraw(Conflict):
    """Withdrawing what is not under review: a campaign not submitted, or one with no changes pending."""

    code = "nothing_to_withdraw"
    default_message = _l("Nothing of this campaign is under review, so there is nothing to withdraw.")


class InvalidCampaign(InvalidInput):
    """A campaign field that makes no sense; `field` names it, so a form can show the message on that field."""

    default_message = _l("This campaign is not valid.")


class ReasonRequired(InvalidInput):
    """A rejection needs a reason the merchant can act on."""

    default_message = _l("Please give a reason.")
