"""Typed refusals of redemption: buying, cancelling and using coupons. The rider API answers them as JSON, the
counter page shows them as its result."""

from __future__ import annotations

from metropoints.core.errors import Conflict, DomainError, Forbidden, NotFound


class NotLive(Conflict):
    """The campaign is not on sale: unknown, not approved, outside its sale window, or its merchant is suspended."""

    code = "not_live"
    default_message = "This campaign is not on sale."


class OutOfStock(Conflict):
    """The campaign has no coupons left."""

    code = "out_of_stock"
    default_message = "This campaign is sold out."


class LimitReached(Conflict):
    """The rider holds as many coupons of this campaign as it allows (cancelled ones do not count)."""

    code = "limit_reached"
    default_message = "You already have as many coupons of this campaign as it allows."


class CouponNotFound(NotFound):
    """No such coupon, or another rider's (we do not say which)."""

    default_message = "No such coupon."


class NotCancellable(Conflict):
    """Only an issued coupon still within its validity can be cancelled."""

    code = "not_cancellable"
    default_message = "This coupon can no longer be cancelled."


class UnknownCode(NotFound):
    """A code that is not ours (forged, altered or mistyped), or that no coupon carries."""

    code = "unknown_code"
    default_message = "This is not a valid coupon code."


class WrongMerchant(Forbidden):
    """The coupon is another merchant's."""

    code = "wrong_merchant"
    default_message = "This coupon is for another merchant."


class WrongStore(Forbidden):
    """The coupon's campaign is not valid at this store."""

    code = "wrong_store"
    default_message = "This coupon is not valid at this store."


class AlreadyUsed(Conflict):
    """The coupon was used before; `used_at` and `store_id` say when and where."""

    code = "already_used"
    default_message = "This coupon has already been used."


class CouponGone(DomainError):
    """A coupon that can never be used again (410)."""

    http_status = 410


class CouponExpired(CouponGone):
    """The coupon's validity has ended."""

    code = "expired"
    default_message = "This coupon has expired."


class CouponCancelled(CouponGone):
    """The rider cancelled the coupon."""

    code = "cancelled"
    default_message = "This coupon was cancelled."


class TooManyAttempts(DomainError):
    """The store's counter is refused for a while: `until` says when it opens, `attempts` its unknown codes.

    A store whose counter was sent too many unknown codes lately (redemption.counter's guess limit) is refused
    whatever the code, until the oldest of those codes leaves the window."""

    code = "too_many_attempts"
    http_status = 429
    default_message = "Too many unknown codes at this store's counter; try again later."
