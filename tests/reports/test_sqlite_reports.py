"""The report queries on SQLite (the zero-setup default): same figures, same Asia/Shanghai days as PostgreSQL."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import SERVICE_OFFSET, service_day, utcnow
from tests.helpers import trip

pytestmark = pytest.mark.sqlite




def local(days_back: int, hour: int = 12) -> datetime:
    """A wall-clock time in Shenyang, `days_back` service days ago."""
    day = service_day(utcnow()) - timedelta(days=days_back)
    return datetime.combine(day, time(hour), tzinfo=SERVICE_OFFSET)


def test_kpis_on_sqlite(sqlite_app):
    """Registration days are Asia/Shanghai dates (07:00 local is the previous UTC day), trip points and CO2e
    land on their service days, redemptions and merchants are counted, the rollups rebuild and verify there too,
    and the page renders."""
    from flask_babel import refresh

    from metropoints.accrual.operations import create_partner, link_rider_ref, receive_trips
    from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus
    from metropoints.core.models import Role
    from metropoints.core.operations import create_user, register_rider
    from metropoints.marketplace.models import Category, Merchant, MerchantStatus
    from metropoints.redemption.models import Coupon, CouponStatus
    from metropoints.reports import queries, rollups

    early = register_rider(phone="13900000001", password="password123")
    early.created_at = local(2, hour=7)
    rider = register_rider(phone="13900000002", password="password123")
    link_rider_ref(rider=rider, source="afc", ref="card-1")
    partner, _ = create_partner(name="afc", actor_label="test")
    receive_trips(partner=partner, payload={"trips": [trip("a", exited_at=local(3)), trip("b", exited_at=local(1))]})
    owner = create_user(email="shop@x.example", password="password123", role=Role.merchant_owner)
    shop = Merchant(name="Shop", category=Category.dining, contact_name="Li", contact_phone="1", licence_no="L1",
                    status=MerchantStatus.approved, owner_id=owner.id, decided_at=local(2, 7))
    db.session.add(shop)
    db.session.flush()
    campaign = Campaign(merchant_id=shop.id, status=CampaignStatus.approved, title="Tea", category=Category.dining,
                        benefit_type=BenefitType.free_item, point_price=2, stock_total=5, stock_left=4,
                        per_rider_limit=1, valid_from=local(5), valid_until=local(-5), coupon_valid_days=3)
    db.session.add(campaign)
    db.session.flush()
    db.session.add(Coupon(campaign_id=campaign.id, rider_id=rider.id, code="c1", status=CouponStatus.issued,
                          points_spent=2, issued_at=local(1), expires_at=local(-2)))
    create_user(email="ops@x.example", password="password123", role=Role.operator)
    rollups.rebuild()  # the registration time and the coupon above were written as raw rows
    assert rollups.differences() == []
    commit_unit_of_work()

    k = queries.kpis(7)
    back = {(service_day(utcnow()) - day).days: value for day, value in k.riders_series.points()}
    assert back == {6: 0, 5: 0, 4: 0, 3: 0, 2: 1, 1: 1, 0: 2}
    assert [v for _, v in k.points_series.points()] == [0, 0, 0, 6, 6, 12, 12]
    assert k.co2e_series.values[-1] == k.co2e_grams == 2 * 267
    assert (k.redemptions, k.redemptions_series.values[-2:]) == (1, [1, 1])
    assert (k.merchants_approved, k.merchants_total, k.merchants_series.values[4]) == (1, 1, 1)
    assert [(f.version_id, f.trips, f.grams) for f in k.factors] == [(1, 2, 534)]

    client = sqlite_app.test_client()
    assert client.post("/login", data={"email": "ops@x.example", "password": "password123"}).status_code == 302
    refresh()
    reply = client.get("/backoffice/?days=7", headers={"Accept-Language": "en"})
    assert reply.status_code == 200 and 'data-kpi="points">12<' in reply.get_data(as_text=True)
