"""Invariant 6: a merchant's staff see and touch only their merchant's data.

The walk enumerates every portal rule in the app's URL map (so routes added later, by any package, are covered),
fills each id with one of merchant A's, and requests it as merchant B's owner and as B's cashier.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import inspect, or_, select
from werkzeug.routing.converters import AnyConverter, IntegerConverter

from metropoints.campaigns.models import (
    BenefitType,
    Campaign,
    CampaignFeature,
    CampaignRevision,
    CampaignStatus,
    CampaignStore,
    RevisionStatus,
)
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import User
from metropoints.core.timeutil import utcnow
from metropoints.marketplace.models import Merchant, StaffMember, Store
from tests.marketplace.conftest import login, page

# Public pages that take no merchant's id (the invitation link's token is a secret of its own).
PUBLIC = {"marketplace.apply", "marketplace.applied", "marketplace.accept_invite"}
DENIED = {403, 404}
# Replies of another package's routes that refuse for a reason other than access (its own input checks);
# they are allowed, as long as they show none of A's data and change nothing of A's.
OTHER_REFUSALS = {400, 405, 409, 422}


def add_campaigns(merchant: Merchant, store: Store, operator: User) -> dict[str, list[int]]:
    """Give merchant A a live campaign (featured, with a pending revision) and a submitted one; their ids."""
    now = utcnow()
    common = {"merchant_id": merchant.id, "category": "dining", "benefit_type": BenefitType.voucher,
              "face_value_fen": 1000, "point_price": 50, "stock_total": 10, "stock_left": 10,
              "valid_from": now - timedelta(days=1), "valid_until": now + timedelta(days=30)}
    live = Campaign(status=CampaignStatus.approved, title="Alpha secret dumpling voucher", **common)
    submitted = Campaign(status=CampaignStatus.submitted, title="Alpha secret tea offer", **common)
    db.session.add_all([live, submitted])
    db.session.flush()
    db.session.add_all([CampaignStore(campaign_id=live.id, store_id=store.id),
                        CampaignStore(campaign_id=submitted.id, store_id=store.id)])
    revision = CampaignRevision(campaign_id=live.id, status=RevisionStatus.pending, created_by=merchant.owner_id,
                                proposed_json='{"title": "Alpha secret revised title"}',
                                previous_json='{"title": "Alpha secret dumpling voucher"}')
    feature = CampaignFeature(campaign_id=live.id, station_id=store.station_id, created_by=operator.id)
    db.session.add_all([revision, feature])
    commit_unit_of_work()
    return {"campaign_id": [live.id, submitted.id], "revision_id": [revision.id], "feature_id": [feature.id]}


def snapshot(merchant_id: int) -> dict:
    """Every column of every row that belongs to a merchant (its stores, staff, their accounts, campaigns...)."""
    db.session.expire_all()
    store_ids = select(Store.id).where(Store.merchant_id == merchant_id)
    campaign_ids = select(Campaign.id).where(Campaign.merchant_id == merchant_id)
    user_ids = select(StaffMember.user_id).where(StaffMember.merchant_id == merchant_id)
    queries = {
        "merchant": select(Merchant).where(Merchant.id == merchant_id),
        "stores": select(Store).where(Store.merchant_id == merchant_id),
        "staff": select(StaffMember).where(or_(StaffMember.merchant_id == merchant_id,
                                               StaffMember.store_id.in_(store_ids))),
        "users": select(User).where(User.id.in_(user_ids)),
        "campaigns": select(Campaign).where(Campaign.merchant_id == merchant_id),
        "campaign_stores": select(CampaignStore).where(or_(CampaignStore.store_id.in_(store_ids),
                                                           CampaignStore.campaign_id.in_(campaign_ids))),
        "revisions": select(CampaignRevision).where(CampaignRevision.campaign_id.in_(campaign_ids)),
        "features": select(CampaignFeature).where(CampaignFeature.campaign_id.in_(campaign_ids)),
    }
    state = {}
    for name, query in queries.items():
        rows = db.session.scalars(query).all()
        state[name] = sorted(
            tuple((attr.key, repr(getattr(row, attr.key))) for attr in inspect(row).mapper.column_attrs)
             for row in rows)
    return state


def urls_with_ids_of(app, ids: dict[str, list]) -> list[tuple[str, str, str, bool]]:
    """(endpoint, method, url, takes_ids) for every portal rule and method, ids filled with A's (every combination)."""
    adapter = app.url_map.bind("localhost")
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/portal") or rule.endpoint in PUBLIC:
            continue
        choices = {}
        for name in rule.arguments:
            converter = rule._converters[name]
            if isinstance(converter, AnyConverter):
                choices[name] = sorted(converter.items)
            elif isinstance(converter, IntegerConverter):
                choices[name] = ids.get(name) or ids["merchant_id"]
            else:
                choices[name] = ids.get(name) or ["x"]
        for combo in itertools.product(*choices.values()):
            values = dict(zip(choices, combo, strict=True))
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                url = adapter.build(rule.endpoint, values, method=method)
                takes_ids = any(not isinstance(rule._converters[n], AnyConverter) for n in rule.arguments)
                found.append((rule.endpoint, method, url, takes_ids))
    return found


@pytest.fixture
def two_merchants(app, create_operator, create_merchant, create_store, create_cashier):
    """Merchants A and B, each with a store and a cashier; A also with campaigns. Returns (A's ids, secrets, B's
    owner e-mail, B's cashier e-mail)."""
    operator = create_operator()
    merchant_a = create_merchant("Alpha Secret Noodle House", email="owner@alpha.example")
    store_a = create_store(merchant_a, "Alpha Secret Store", address="1 Alpha Secret Road", station_id="0105")
    cashier_a = create_cashier(store_a, "cashier@alpha.example")
    merchant_b = create_merchant("Bravo Bakery", email="owner@bravo.example")
    create_cashier(create_store(merchant_b, "Bravo Store", address="2 Bravo Road"), "cashier@bravo.example")
    ids = {"merchant_id": [merchant_a.id], "store_id": [store_a.id], "staff_id": [cashier_a.id],
           "user_id": [merchant_a.owner_id, cashier_a.user_id], "station_id": [store_a.station_id],
           **add_campaigns(merchant_a, store_a, operator)}
    secrets = ["Alpha Secret", "Alpha secret", "alpha.example", merchant_a.licence_no]
    return merchant_a.id, ids, secrets


@pytest.mark.parametrize("walker", ["owner@bravo.example", "cashier@bravo.example"])
def test_merchant_b_reaches_nothing_of_merchant_a(app, two_merchants, walker):
    """As B's owner and as B's cashier, every portal URL that takes one of A's ids is 403 or 404 (another package's
    own input refusals aside), every back-office page is 403, no reply shows any of A's data, and nothing of A's
    changes — also when forms are posted with A's ids in every field."""
    merchant_a, ids, secrets = two_merchants
    before = snapshot(merchant_a)
    client = app.test_client()
    login(client, walker)
    form = {"store_id": ids["store_id"][0], "store_ids": ids["store_id"][0], "staff_id": ids["staff_id"][0],
            "campaign_id": ids["campaign_id"][0], "merchant_id": merchant_a, "station_id": ids["station_id"][0],
            "decision": "suspend", "reason": "walk", "email": "walker@bravo.example", "name": "walk",
            "address": "walk", "title": "walk", "quantity": "5", "stock": "5"}
    walked, tolerated = [], []
    urls = urls_with_ids_of(app, ids)
    assert {"marketplace.store_edit", "marketplace.staff_deactivate", "marketplace.merchant_decide"} <= {
        endpoint for endpoint, *_ in urls}
    for endpoint, method, url, takes_ids in sorted(urls, key=lambda u: u[1] != "GET"):  # GETs first
        own_package = endpoint.startswith("marketplace.")
        try:
            reply = page(client, url, method, data=form if method == "POST" else None)
        except Exception:  # another package's route that breaks on our input: nothing was shown
            db.session.rollback()
            if own_package:
                raise
            tolerated.append((method, url, "exception"))
            continue
        body = reply.get_data(as_text=True)
        leaked = [s for s in secrets if s in body]
        assert not leaked, (walker, method, url, reply.status_code, leaked)
        assert reply.status_code < 500, (method, url)
        if "/backoffice/" in url or (takes_ids and own_package):
            expected = {403} if "/backoffice/" in url and not takes_ids else DENIED
            assert reply.status_code in expected, (walker, method, url, reply.status_code)
        elif takes_ids:
            if reply.status_code in OTHER_REFUSALS:
                tolerated.append((method, url, reply.status_code))
            else:
                assert reply.status_code in DENIED, (walker, method, url, reply.status_code)
        walked.append((method, url, reply.status_code))
    assert snapshot(merchant_a) == before
    assert len(walked) >= 10, walked
