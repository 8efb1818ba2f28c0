"""Read-side of the marketplace: whose staff a user is, and loaders that 404/403 in one place.

Other packages (campaigns, settlement, the POS API) import `membership_of` and `portal_membership` to scope
what a merchant's staff may see; an object of another merchant is "not found", never "forbidden", so ids leak
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select

from metropoints.core.db import db
from metropoints.core.errors import NotFound
from metropoints.core.models import AuditEntry, Role, Station, User
from metropoints.marketplace.errors import MerchantNotApproved, NotStaff, OwnerOnly, UnknownStore
from metropoints.marketplace.models import Merchant, MerchantStatus, StaffMember, Store


def membership_of(user_id: int) -> StaffMember | None:
    """The StaffMember row of a portal user (owner or cashier), or None for operators and strangers."""
    return db.session.scalar(select(StaffMember).where(StaffMember.user_id == user_id))


def portal_membership(user: User, *, owner: bool = False, suspended_ok: bool = False) -> StaffMember:
    """The user's place at an approved merchant; NotStaff / MerchantNotApproved / OwnerOnly (all 403) otherwise.

    Every merchant-side page and endpoint goes through here, so a suspended merchant's owner and cashiers are
    locked out at once, and a deactivated cashier with a live session is too. `suspended_ok` lets a suspended
    merchant's staff through, for what suspension does not take away (its bills).
    """
    member = membership_of(user.id) if user.active and user.role in (Role.merchant_owner, Role.cashier) else None
    if member is None:
        raise NotStaff()
    merchant = db.session.get(Merchant, member.merchant_id)
    allowed = (MerchantStatus.approved, MerchantStatus.suspended) if suspended_ok else (MerchantStatus.approved,)
    if merchant.status not in allowed:
        raise MerchantNotApproved(status=merchant.status.value)
    if owner and not member.is_owner:
        raise OwnerOnly()
    return member


def get_merchant(merchant_id: int) -> Merchant:
    """A merchant by id, for the back office; NotFound if there is none."""
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("No such merchant.")
    return merchant


def get_store_for(user: User, store_id: int) -> Store:
    """A store of the owner's own merchant; UnknownStore (404) when it is missing or another merchant's."""
    member = portal_membership(user, owner=True)
    store = db.session.get(Store, store_id)
    if store is None or store.merchant_id != member.merchant_id:
        raise UnknownStore()
    return store


def get_staff_for(user: User, staff_id: int) -> StaffMember:
    """A staff member of the owner's own merchant; NotFound (404) when missing or another merchant's."""
    member = portal_membership(user, owner=True)
    staff = db.session.get(StaffMember, staff_id)
    if staff is None or staff.merchant_id != member.merchant_id:
        raise NotFound("No such staff member.")
    return staff


def stores_of(merchant_id: int, *, active_only: bool = False) -> list[Store]:
    """A merchant's stores, active first, then by name."""
    query = select(Store).where(Store.merchant_id == merchant_id)
    if active_only:
        query = query.where(Store.active.is_(True))
    return list(db.session.scalars(query.order_by(Store.active.desc(), Store.name, Store.id)))


def staff_of(merchant_id: int) -> list[tuple[StaffMember, User, Store | None]]:
    """A merchant's staff with their accounts and stores: the owner first, then cashiers by e-mail."""
    rows = db.session.execute(
        select(StaffMember, User, Store)
        .join(User, User.id == StaffMember.user_id)
        .outerjoin(Store, Store.id == StaffMember.store_id)
        .where(StaffMember.merchant_id == merchant_id)
        .order_by(StaffMember.is_owner.desc(), User.email)
    )
    return [tuple(row) for row in rows]


def merchant_counts(merchant_id: int) -> dict[str, int]:
    """How many active stores and active cashiers a merchant has (for the dashboard)."""
    stores = db.session.scalar(select(func.count()).select_from(Store)
                               .where(Store.merchant_id == merchant_id, Store.active.is_(True)))
    cashiers = db.session.scalar(
        select(func.count()).select_from(StaffMember).join(User, User.id == StaffMember.user_id)
        .where(StaffMember.merchant_id == merchant_id, StaffMember.is_owner.is_(False), User.active.is_(True))
    )
    return {"stores": stores or 0, "cashiers": cashiers or 0}


# The merchant list's sort keys: what the operator may sort by, and the column.
MERCHANT_SORTS = {"name": Merchant.name, "applied": Merchant.applied_at, "status": Merchant.status}
MERCHANTS_PER_PAGE = 25
MAX_MERCHANT_PAGE = 1000  # OFFSET stays bounded; a search finds what lies beyond


@dataclass(frozen=True)
class MerchantSearch:
    """What the back office's merchant list shows: matching text, a status, a sort order, a page."""

    text: str = ""  # found in the name, licence number, contact or owner's e-mail (any case)
    status: MerchantStatus | None = None
    sort: str = "applied"  # a key of MERCHANT_SORTS
    descending: bool = True
    page: int = 1

    def __post_init__(self) -> None:
        """Keep the page within 1..MAX_MERCHANT_PAGE and the sort among MERCHANT_SORTS."""
        object.__setattr__(self, "page", min(max(int(self.page), 1), MAX_MERCHANT_PAGE))
        if self.sort not in MERCHANT_SORTS:
            object.__setattr__(self, "sort", "applied")

    def args(self, **changes: Any) -> dict[str, Any]:
        """The search as query-string arguments with `changes` applied, defaults left out, for links that keep the
        rest; a change of anything but the page starts again from the first page."""
        values = {"q": self.text, "status": self.status.value if self.status else "", "sort": self.sort,
                  "dir": "desc" if self.descending else "asc", "page": self.page}
        if "page" not in changes:
            values["page"] = 1
        values.update(changes)
        defaults = {"q": "", "status": "", "sort": "applied", "dir": "desc", "page": 1}
        return {key: value for key, value in values.items() if value not in ("", None) and value != defaults[key]}


def list_merchants(search: MerchantSearch | None = None,
                   per_page: int | None = None) -> tuple[list[tuple[Merchant, User]], bool]:
    """One page of merchants with their owners for the back office, and whether a next page follows; the newest
    application first unless sorted otherwise. Reads at most `per_page` (MERCHANTS_PER_PAGE) + 1 rows (LIMIT/OFFSET)."""
    search, per_page = search or MerchantSearch(), per_page or MERCHANTS_PER_PAGE
    query = select(Merchant, User).join(User, User.id == Merchant.owner_id)
    if search.status is not None:
        query = query.where(Merchant.status == search.status)
    if search.text:
        needle = search.text.lower()
        query = query.where(or_(*(func.lower(column).contains(needle, autoescape=True) for column in (
            Merchant.name, Merchant.licence_no, Merchant.contact_name, Merchant.contact_phone, User.email))))
    column = MERCHANT_SORTS[search.sort]
    order = (column.desc(), Merchant.id.desc()) if search.descending else (column.asc(), Merchant.id.asc())
    rows = db.session.execute(query.order_by(*order).offset((search.page - 1) * per_page).limit(per_page + 1)).all()
    return [tuple(row) for row in rows[:per_page]], len(rows) > per_page


def merchant_audit(merchant_id: int) -> list[AuditEntry]:
    """The audit log about one merchant, oldest first."""
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.subject == f"merchant:{merchant_id}")
                                   .order_by(AuditEntry.at, AuditEntry.id)))


def station_choices() -> list[tuple[str, str]]:
    """Every station for the store form's picker, by (first) line then name: ("0101", "十三号街 (SHISANHAOJIE) · 1")."""
    stations = db.session.scalars(select(Station)).all()

    def line_then_name(station: Station) -> tuple[int, str, str]:
        """Sort key: the station's first line as a number, then its pinyin name."""
        first = station.lines.split(",")[0]
        return (int(first) if first.isdigit() else 999, station.name_en, station.station_id)

    return [(s.station_id, f"{s.name_zh} ({s.name_en}) · {s.lines}") for s in sorted(stations, key=line_then_name)]


def get_station(station_id: str) -> Station | None:
    """A station by id, or None."""
    return db.session.get(Station, station_id) if isinstance(station_id, str) else None
