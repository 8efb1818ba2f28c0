"""Errors raised by marketplace operations and loaders."""

from __future__ import annotations

from metropoints.core.errors import Conflict, Forbidden, InvalidInput, NotFound


class LicenceTaken(Conflict):
    """A merchant with this business licence number has applied already."""

    code = "licence_taken"
    default_message = "A merchant with this licence number exists."


class IllegalTransition(Conflict):
    """The decision is not allowed from the merchant's current status (see MERCHANT_TRANSITIONS)."""

    code = "illegal_transition"
    default_message = "This decision is not possible in the merchant's current status."


class ReasonRequired(InvalidInput):
    """Rejections and suspensions must say why."""

    code = "reason_required"
    default_message = "A reason is required for this decision."


class UnknownStation(InvalidInput):
    """A store must be near a station of the real network."""

    code = "unknown_station"
    default_message = "No such metro station."


class UnknownStore(NotFound):
    """The store does not exist, or belongs to another merchant (we do not say which)."""

    code = "unknown_store"
    default_message = "No such store."


class StoreInactive(InvalidInput):
    """Cashiers can only be bound to a store that is open."""

    code = "store_inactive"
    default_message = "The store is deactivated."


class InvalidInvite(NotFound):
    """An invitation link that is unknown, already used, expired or withdrawn."""

    code = "invalid_invite"
    default_message = "This invitation link is not valid (any more)."


class NotStaff(Forbidden):
    """A portal user who is not on any merchant's staff, or whose account is deactivated."""

    code = "not_staff"
    default_message = "This account does not belong to a merchant."


class MerchantNotApproved(Forbidden):
    """The merchant is suspended (or not approved): its staff are locked out of the portal."""

    code = "merchant_not_approved"
    default_message = "The merchant is not approved; its portal is locked."


class OwnerOnly(Forbidden):
    """Only the merchant's owner manages stores and staff."""

    code = "owner_only"
    default_message = "Only the merchant's owner may do this."
