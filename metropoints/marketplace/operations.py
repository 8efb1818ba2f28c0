"""Marketplace rules: applications, the metro team's decisions, stores, cashiers and invitations.

Plain functions with keyword-only arguments and the acting user passed in; they flush, never commit, and raise
typed errors (metropoints.marketplace.errors). The mails they tell people by (an application received, decided; an
invitation) are queued in the same unit of work and sent only after it commits (core.mail).
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from metropoints.core.db import db
from metropoints.core.errors import Forbidden, InvalidInput
from metropoints.core.mail import LOCALES, mail_user, public_link
from metropoints.core.models import Role, User
from metropoints.core.operations import EmailTaken, check_password, create_user, hash_token, record_audit
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.errors import (
    IllegalTransition,
    InvalidInvite,
    LicenceTaken,
    OwnerOnly,
    ReasonRequired,
    StoreInactive,
    UnknownStation,
    UnknownStore,
)
from metropoints.marketplace.models import (
    MERCHANT_TRANSITIONS,
    Category,
    Merchant,
    MerchantStatus,
    StaffMember,
    Store,
)
from metropoints.marketplace.queries import get_station, membership_of

# The unified social credit code (统一社会信用代码): 18 digits and upper-case letters.
LICENCE_RE = re.compile(r"^[0-9A-Z]{18}$")
CONTACT_PHONE_RE = re.compile(r"^\+?[0-9][0-9 -]{5,18}[0-9]$")
INVITE_DAYS = 14

# Decision name -> (target status, reason required); the audit action is "merchant.<decision>".
DECISIONS: dict[str, tuple[MerchantStatus, bool]] = {
    "approve": (MerchantStatus.approved, False),
    "reject": (MerchantStatus.rejected, True),
    "suspend": (MerchantStatus.suspended, True),
    "reinstate": (MerchantStatus.approved, False),
}
# The decisions the owner is mailed about: decision name -> (the mail's kind, its template).
DECISION_MAILS = {"approve": ("merchant.approved", "marketplace/mail/merchant_approved.txt"),
                  "reject": ("merchant.rejected", "marketplace/mail/merchant_rejected.txt")}


def _text(value: object, *, field: str, max_len: int, required: bool = True) -> str:
    """A stripped string of at most max_len characters (and not empty when required)."""
    text = value.strip() if isinstance(value, str) else ""
    if (required and not text) or len(text) > max_len:
        raise InvalidInput(f"{field} must have {1 if required else 0} to {max_len} characters.", field=field)
    return text


def normalise_licence(value: object) -> str:
    """A licence number as stored: stripped and upper-cased; InvalidInput unless it has the 18-character shape."""
    licence = value.strip().upper() if isinstance(value, str) else ""
    if not LICENCE_RE.match(licence):
        raise InvalidInput("The licence number must be 18 digits and upper-case letters.", field="licence_no")
    return licence


def apply_merchant(*, name: str, category: Category | str, contact_name: str, contact_phone: str,
                   licence_no: str, email: str, password: str, locale: str = "zh") -> Merchant:
    """A merchant's application: the owner account (inactive until approved), the merchant, the owner's membership;
    the owner is mailed that it arrived. `locale` is the language the owner applied in (zh unless en): their mail's."""
    name = _text(name, field="name", max_len=120)
    try:
        category = Category(category)
    except ValueError:
        raise InvalidInput("Unknown category.", field="category") from None
    contact_name = _text(contact_name, field="contact_name", max_len=64)
    contact_phone = _text(contact_phone, field="contact_phone", max_len=20)
    if not CONTACT_PHONE_RE.match(contact_phone):
        raise InvalidInput("The contact phone must be a phone number.", field="contact_phone")
    licence_no = normalise_licence(licence_no)
    if db.session.scalar(select(Merchant.id).where(Merchant.licence_no == licence_no)) is not None:
        raise LicenceTaken(field="licence_no")
    try:
        owner = create_user(email=email, password=password, role=Role.merchant_owner, display_name=contact_name)
    except EmailTaken:
        raise EmailTaken(field="email") from None
    owner.active = False  # core's login refuses inactive accounts: the owner waits for the metro team
    owner.locale = locale if locale in LOCALES else "zh"
    merchant = Merchant(name=name, category=category, contact_name=contact_name, contact_phone=contact_phone,
                        licence_no=licence_no, status=MerchantStatus.applied, owner_id=owner.id)
    try:
        with db.session.begin_nested():  # the unique index decides between two applications racing for a licence
            db.session.add(merchant)
    except IntegrityError:
        raise LicenceTaken(field="licence_no") from None
    db.session.add(StaffMember(user_id=owner.id, merchant_id=merchant.id, is_owner=True, accepted_at=utcnow()))
    db.session.flush()
    mail_user(owner, kind="merchant.application_received", template="marketplace/mail/application_received.txt",
              merchant=merchant)
    return merchant


def decide_merchant(*, actor: User, merchant: Merchant, decision: str, reason: str = "") -> Merchant:
    """An operator's decision (approve, reject, suspend, reinstate), following MERCHANT_TRANSITIONS, audited.

    The merchant's row is locked first, so two operators deciding at once are serialised and the second one
    meets the status the first one left. Approving (or reinstating) activates the owner's account; suspension
    takes effect at once: the catalogue sells only approved merchants' campaigns, and the portal locks their staff.
    The owner is mailed an approval (with the link to sign in) or a rejection (with the reason).
    """
    if actor is None or actor.role != Role.operator:
        raise Forbidden("Only the metro business team decides on merchants.")
    if decision not in DECISIONS:
        raise InvalidInput("Unknown decision.", field="decision")
    target, needs_reason = DECISIONS[decision]
    reason = (reason or "").strip()
    if needs_reason and not reason:
        raise ReasonRequired(field="reason")
    if len(reason) > 2000:
        raise InvalidInput("The reason must have at most 2000 characters.", field="reason")
    merchant = db.session.execute(select(Merchant).where(Merchant.id == merchant.id).with_for_update()
                                  .execution_options(populate_existing=True)).scalar_one()
    # "reinstate" is the way back from a suspension only; "approve" is the way in from an application.
    expected_from = {"approve": MerchantStatus.applied, "reinstate": MerchantStatus.suspended}.get(decision)
    if target not in MERCHANT_TRANSITIONS[merchant.status] or expected_from not in (None, merchant.status):
        raise IllegalTransition(status=merchant.status.value, decision=decision)
    merchant.status = target
    merchant.decision_reason = reason
    merchant.decided_at = utcnow()
    owner = db.session.get(User, merchant.owner_id)
    if target == MerchantStatus.approved:
        owner.active = True
    record_audit(actor=actor, action=f"merchant.{decision}", subject=f"merchant:{merchant.id}", reason=reason)
    db.session.flush()
    if decision in DECISION_MAILS:
        kind, template = DECISION_MAILS[decision]
        mail_user(owner, kind=kind, template=template, merchant=merchant, reason=reason,
                  link=public_link("core.login", email=owner.email))
    return merchant


def _owner_membership(actor: User, merchant_id: int) -> StaffMember:
    """The actor's owner membership of that merchant; OwnerOnly otherwise (a second line behind the loaders)."""
    member = membership_of(actor.id) if actor is not None else None
    if member is None or not member.is_owner or member.merchant_id != merchant_id:
        raise OwnerOnly()
    return member


def _store_fields(name: object, address: object, station_id: object, opening_hours: object) -> dict:
    """A store's fields, checked: name, address, a station of the real network, opening hours."""
    if get_station(station_id) is None:
        raise UnknownStation(field="station_id")
    return {"name": _text(name, field="name", max_len=120), "address": _text(address, field="address", max_len=255),
            "station_id": station_id,
            "opening_hours": _text(opening_hours, field="opening_hours", max_len=120, required=False)}


def create_store(*, actor: User, merchant: Merchant, name: str, address: str, station_id: str,
                 opening_hours: str = "") -> Store:
    """A new store of the owner's merchant, near a station of the real network."""
    _owner_membership(actor, merchant.id)
    store = Store(merchant_id=merchant.id, active=True, **_store_fields(name, address, station_id, opening_hours))
    db.session.add(store)
    db.session.flush()
    return store


def update_store(*, actor: User, store: Store, name: str, address: str, station_id: str,
                 opening_hours: str = "") -> Store:
    """Change a store's name, address, station or opening hours."""
    _owner_membership(actor, store.merchant_id)
    for key, value in _store_fields(name, address, station_id, opening_hours).items():
        setattr(store, key, value)
    db.session.flush()
    return store


def deactivate_store(*, actor: User, store: Store) -> Store:
    """Close a store: it gets no new cashiers (and campaigns stop listing it); its history stays."""
    _owner_membership(actor, store.merchant_id)
    store.active = False
    record_audit(actor=actor, action="store.deactivate", subject=f"store:{store.id}")
    db.session.flush()
    return store


def _open_store(store_id: object, merchant_id: int | None = None) -> Store:
    """An active store (of that merchant, when given); UnknownStore / StoreInactive otherwise."""
    store = db.session.get(Store, store_id) if isinstance(store_id, int) else None
    if store is None or (merchant_id is not None and store.merchant_id != merchant_id):
        raise UnknownStore(field="store_id")
    if not store.active:
        raise StoreInactive(field="store_id")
    return store


def _mail_invite(*, actor: User, member: StaffMember, raw: str) -> None:
    """Mail the invited cashier the invitation link, in the inviting owner's language (which becomes theirs)."""
    user = db.session.get(User, member.user_id)
    user.locale = actor.locale or "zh"
    mail_user(user, kind="staff.invitation", template="marketplace/mail/cashier_invitation.txt", inviter=actor,
              merchant=db.session.get(Merchant, member.merchant_id), store=db.session.get(Store, member.store_id),
              link=public_link("marketplace.accept_invite", token=raw), days=INVITE_DAYS)


def _new_invite(member: StaffMember) -> str:
    """A fresh invitation token for a cashier; only its SHA-256 is stored, the raw token is returned once."""
    raw = secrets.token_urlsafe(32)
    member.invite_token_hash = hash_token(raw)
    member.invited_at = utcnow()
    return raw


def invite_cashier(*, actor: User, merchant: Merchant, email: str, store_id: int) -> tuple[StaffMember, str]:
    """Invite a cashier to one store of the owner's merchant: an inactive account with a password nobody knows,
    and a link (returned once, and mailed to the cashier) through which the cashier sets their own password."""
    _owner_membership(actor, merchant.id)
    store = _open_store(store_id, merchant.id)
    try:
        user = create_user(email=email, password=secrets.token_urlsafe(32), role=Role.cashier)
    except EmailTaken:
        raise EmailTaken(field="email") from None
    user.active = False
    member = StaffMember(user_id=user.id, merchant_id=merchant.id, store_id=store.id, is_owner=False)
    raw = _new_invite(member)
    db.session.add(member)
    db.session.flush()
    record_audit(actor=actor, action="staff.invite", subject=f"staff:{member.id}")
    _mail_invite(actor=actor, member=member, raw=raw)
    return member, raw


def renew_invite(*, actor: User, member: StaffMember) -> str:
    """A new invitation link for a cashier who has not accepted yet (the old link stops working), mailed again."""
    _owner_membership(actor, member.merchant_id)
    if member.is_owner or member.accepted_at is not None:
        raise InvalidInput("This person has accepted the invitation already.", field="staff")
    raw = _new_invite(member)
    db.session.flush()
    _mail_invite(actor=actor, member=member, raw=raw)
    return raw


def pending_invite(token: object) -> StaffMember:
    """The cashier invited with this token, while the invitation is open; InvalidInvite otherwise."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        raise InvalidInvite()
    member = db.session.scalar(select(StaffMember).where(StaffMember.invite_token_hash == hash_token(token)))
    if member is None or member.accepted_at is not None or member.invited_at < utcnow() - timedelta(days=INVITE_DAYS):
        raise InvalidInvite()
    return member


def accept_invite(*, token: str, password: str) -> User:
    """The invited cashier sets a password: the account becomes active and the link is used up."""
    member = pending_invite(token)
    password = check_password(password)
    user = db.session.get(User, member.user_id)
    user.password_hash = generate_password_hash(password)
    user.active = True
    member.invite_token_hash = None
    member.accepted_at = utcnow()
    db.session.flush()
    return user


def deactivate_cashier(*, actor: User, member: StaffMember) -> StaffMember:
    """Lock a cashier out: the account becomes inactive and any open invitation is withdrawn."""
    _owner_membership(actor, member.merchant_id)
    if member.is_owner:
        raise Forbidden("The owner cannot be deactivated here.", field="staff")
    db.session.get(User, member.user_id).active = False
    member.invite_token_hash = None
    record_audit(actor=actor, action="staff.deactivate", subject=f"staff:{member.id}")
    db.session.flush()
    return member


def create_cashier(*, email: str, store_id: int, password: str, actor_label: str = "cli") -> StaffMember:
    """An active cashier for a store, with a password (support and bulk onboarding; owners normally invite)."""
    store = _open_store(store_id)
    check_password(password)
    user = create_user(email=email, password=password, role=Role.cashier)
    member = StaffMember(user_id=user.id, merchant_id=store.merchant_id, store_id=store.id, is_owner=False,
                         accepted_at=utcnow())
    db.session.add(member)
    db.session.flush()
    record_audit(actor=None, actor_label=actor_label, action="staff.create", subject=f"staff:{member.id}")
    return member


def require_cashier_second_factor(*, actor: User, merchant: Merchant, required: bool) -> Merchant:
    """The owner requires (or stops requiring) a second factor of the merchant's cashiers: one who has none enrols
    at the next sign-in (core.twofactor). Audited."""
    _owner_membership(actor, merchant.id)
    if merchant.cashiers_need_second_factor != bool(required):
        merchant.cashiers_need_second_factor = bool(required)
        action = "merchant.cashier_second_factor_on" if required else "merchant.cashier_second_factor_off"
        record_audit(actor=actor, action=action, subject=f"merchant:{merchant.id}")
        db.session.flush()
    return merchant
