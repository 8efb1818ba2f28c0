"""The rollups equal the raw rows after any mix of activity; `flask reports verify` says so, and names a rollup figure
that was changed behind its back; `flask reports rebuild` puts it right."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import text

from metropoints.accrual.models import RiderLink, RuleVersion, TripMode
from metropoints.accrual.operations import link_rider_ref, receive_trips, sweep_held_trips
from metropoints.accrual.rules import ensure_default_rules
from metropoints.campaigns.models import BenefitType, Campaign, CampaignStatus, CampaignStore
from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work
from metropoints.core.errors import DomainError
from metropoints.core.timeutil import SERVICE_OFFSET, service_day, utcnow
from metropoints.marketplace.models import Category
from metropoints.redemption import operations as redemption
from metropoints.reports import queries, rollups
from tests.helpers import run_at_once, trip
from tests.modes import credit_trip

DAYS = 8


def local(days_back: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in Shenyang, `days_back` service days ago."""
    day = service_day(utcnow()) - timedelta(days=days_back)
    return datetime.combine(day, time(hour, minute), tzinfo=SERVICE_OFFSET)


def campaign_of(shop, *, price: int, valid_days: int, stock: int = 50) -> Campaign:
    """An approved campaign of the shop on sale since before the activity, valid at its first store."""
    campaign = Campaign(merchant_id=shop.merchant.id, status=CampaignStatus.approved, title=f"Tea {price}",
                        category=Category.dining, benefit_type=BenefitType.free_item, point_price=price,
                        stock_total=stock, stock_left=stock, per_rider_limit=50, valid_from=local(DAYS + 2, 0),
                        valid_until=utcnow() + timedelta(days=30), coupon_valid_days=valid_days)
    db.session.add(campaign)
    db.session.flush()
    db.session.add(CampaignStore(campaign_id=campaign.id, store_id=shop.store.id))
    commit_unit_of_work()
    return campaign


def attempt(call) -> object | None:
    """Run one operation as its own unit of work; a refusal (no stock, no points, no longer valid) is rolled back."""
    try:
        result = call()
    except DomainError:
        rollback_unit_of_work()
        return None
    commit_unit_of_work()
    return result


@pytest.fixture
def random_city(app, create_rider, create_partner, create_shop):
    """A week of random activity: trips of several riders across days (some over the daily cap, some held and
    credited when their card is linked or by the sweep, a second rule version from mid-week, resends), bus, bike and
    walking trips (a second bus version from mid-week), then coupons bought, used, cancelled and expired on their own
    days."""
    rng = random.Random(20261202)
    db.session.add(RuleVersion(points_per_km_milli=1500, daily_cap=40, co2e_mg_per_km=50_000, factor_name="test grid",
                               effective_from=local(3, 0), created_by="test"))
    commit_unit_of_work()
    riders = [create_rider(links=[("afc", f"card-{n}")]) for n in range(5)]
    late = create_rider()  # links its card after its trips arrived
    partner, _ = create_partner(name="afc")
    rows = []
    for days_back in range(DAYS, 0, -1):
        for n in range(6):
            for leg in range(rng.randrange(0, 14)):  # 11 trips of 6 points fill the default cap of 60
                rows.append(trip(f"t{days_back}-{n}-{leg}", ref=f"card-{n}",
                                 exited_at=local(days_back, 6, 0) + timedelta(minutes=40 * leg)))
    rng.shuffle(rows)
    for start in range(0, len(rows), 37):
        receive_trips(partner=partner, payload={"trips": rows[start:start + 37] + rows[:3]})  # resends, too
        commit_unit_of_work()
    link_rider_ref(rider=late, source="afc", ref="card-5")
    commit_unit_of_work()
    # A card linked while its trips arrived (the link's row written alone): the scheduled sweep credits them.
    swept = create_rider()
    receive_trips(partner=partner, payload={"trips": [trip(f"s{n}", ref="card-6", exited_at=local(2, 7 + n))
                                                      for n in range(3)]})
    db.session.add(RiderLink(rider_id=swept.id, source="afc", ref="card-6"))
    commit_unit_of_work()
    assert sweep_held_trips() == 3
    commit_unit_of_work()
    ensure_default_rules(TripMode.bus)
    db.session.add(RuleVersion(mode=TripMode.bus, points_per_km_milli=2000, daily_cap=60, co2e_mg_per_km=35_000,
                               factor_name="test bus", factor_source="test", effective_from=local(4, 0),
                               created_by="test"))
    commit_unit_of_work()
    for days_back in range(DAYS, 0, -1):
        for rider in riders:
            for leg in range(rng.randrange(0, 3)):
                mode = rng.choice((TripMode.bus, TripMode.bike))
                credit_trip(rider_id=rider.id, mode=mode, metres=rng.randrange(800, 12_000),
                            exited_at=local(days_back, 19, 20 * leg))
            if rng.random() < 0.6:
                credit_trip(rider_id=rider.id, mode=TripMode.walk, steps=rng.randrange(1000, 20_000),
                            exited_at=local(days_back, 23, 30))
        commit_unit_of_work()

    shop = create_shop()
    campaigns = [campaign_of(shop, price=price, valid_days=days) for price, days in ((7, 1), (12, 3), (25, 2))]
    bought = []
    for days_back in range(DAYS, -1, -1):
        for _ in range(rng.randrange(2, 7)):
            rider, campaign = rng.choice([*riders, late]), rng.choice(campaigns)
            at = local(days_back, rng.randrange(8, 22), rng.randrange(60))
            sale = attempt(lambda r=rider, c=campaign, a=at: redemption.redeem(rider_id=r.id, campaign_id=c.id, now=a))
            if sale is not None:
                bought.append((rider, sale, at))
    for rider, sale, at in bought:
        later = min(at + timedelta(hours=rng.randrange(1, 30)), utcnow())
        fate = rng.random()
        if fate < 0.3:
            attempt(lambda r=rider, s=sale, a=later: redemption.cancel(rider_id=r.id, coupon_id=s.coupon_id, now=a))
        elif fate < 0.6:
            attempt(lambda s=sale, a=later: redemption.validate(cashier=shop.cashier, code=s.code, now=a))
    redemption.expire_coupons(now=local(4, 12))
    redemption.expire_coupons()
    commit_unit_of_work()
    return riders


def test_random_activity_matches_the_raw_rows(random_city, runner):
    """After random trips of every mode, redemptions, cancels, uses and expiry, every rollup equals its raw rows, and
    the KPI figures read from the rollups are what the raw rows add up to."""
    assert rollups.differences() == []
    reply = runner.invoke(args=["reports", "verify"])
    assert reply.exit_code == 0 and "match" in reply.output
    counts = db.session.execute(text(
        "SELECT (SELECT COUNT(*) FROM trips WHERE status = 'capped'), (SELECT COUNT(DISTINCT rule_version_id) "
        "FROM trips WHERE mode IN ('metro', 'bus')), (SELECT COUNT(DISTINCT status) FROM coupons), "
        "(SELECT COALESCE(SUM(points), 0) FROM ledger_entries WHERE kind = 'trip'), "
        "(SELECT COALESCE(SUM(co2e_grams), 0) FROM trips WHERE status IN ('credited', 'capped')), "
        "(SELECT COUNT(*) FROM coupons), (SELECT COUNT(*) FROM riders)")).one()
    capped, versions, statuses, points, grams, coupons, riders = counts
    modes = db.session.execute(text("SELECT COUNT(DISTINCT mode) FROM rollup_trip_days")).scalar_one()
    assert capped > 0 and versions == 4 and statuses == 4 and modes == 4  # the activity reached every case
    k = queries.kpis(30)
    assert (k.points_issued, k.co2e_grams, k.redemptions, k.riders) == (points, grams, coupons, riders)
    assert sum(use.grams for use in k.factors) == grams and len(k.factors) == 6  # 2 metro, 2 bus, bike, walk
    by_mode = ("SELECT mode, COUNT(*), SUM(distance_m), SUM(co2e_grams), SUM(points) FROM trips "
               "WHERE status IN ('credited', 'capped') AND service_day >= :since GROUP BY mode")
    week = queries.kpis(7)
    for split, since in ((k, k.window.first), (week, week.window.first)):
        raw = {mode: tuple(figures) for mode, *figures in db.session.execute(text(by_mode), {"since": since})}
        assert {s.mode.value: (s.period.trips, s.period.metres, s.period.co2e_grams, s.period.points)
                for s in split.modes} == raw
    assert [s.total for s in week.modes] == [s.total for s in k.modes] != [s.period for s in week.modes]


def test_verify_names_a_changed_rollup_and_rebuild_puts_it_right(random_city, runner):
    """A rollup figure changed (or a rollup row removed) behind the writers' back is a difference: verify prints it
    and exits non-zero; rebuild recomputes the rollups from the raw rows and verify is clean again."""
    day = db.session.execute(text("SELECT MIN(service_day) FROM rollup_trip_days")).scalar_one()
    db.session.execute(text("UPDATE rollup_trip_days SET points = points + 1 WHERE service_day = :d "
                            "AND rule_version_id = 1"), {"d": day})
    db.session.execute(text("DELETE FROM rollup_coupon_days WHERE campaign_id = (SELECT MIN(campaign_id) "
                            "FROM rollup_coupon_days) AND service_day = (SELECT MAX(service_day) FROM "
                            "rollup_coupon_days)"))
    commit_unit_of_work()
    reply = runner.invoke(args=["reports", "verify"])
    assert reply.exit_code == 1
    assert f"rollup_trip_days {day.isoformat()}/metro/1 points: rollup " in reply.output
    assert "rollup_coupon_days " in reply.output and "bought: rollup 0, raw rows " in reply.output
    reply = runner.invoke(args=["reports", "rebuild"])
    assert reply.exit_code == 0 and "rollup_trip_days:" in reply.output
    assert runner.invoke(args=["reports", "verify"]).exit_code == 0


def test_concurrent_sales_and_batches_keep_the_rollups_exact(app, create_rider, create_partner, create_shop):
    """Redemptions of two campaigns, cancels and trip batches at once: no deadlock, and the rollups still equal the
    raw rows (each writer adds to its rows in the transaction that writes)."""
    riders = [create_rider(links=[("afc", f"card-{n}")]) for n in range(8)]
    partner, _ = create_partner(name="afc")
    receive_trips(partner=partner, payload={"trips": [trip(f"seed-{n}-{leg}", ref=f"card-{n}",
                                                           exited_at=local(1, 7) + timedelta(minutes=40 * leg))
                                                      for n in range(8) for leg in range(10)]})
    commit_unit_of_work()
    shop = create_shop()
    campaigns = [campaign_of(shop, price=5, valid_days=3, stock=20) for _ in range(2)]

    def buy(rider_id: int, campaign_id: int) -> None:
        """A sale, then the rider cancels it."""
        sale = redemption.redeem(rider_id=rider_id, campaign_id=campaign_id)
        commit_unit_of_work()
        redemption.cancel(rider_id=rider_id, coupon_id=sale.coupon_id)
        commit_unit_of_work()

    def batch(n: int) -> None:
        """A batch of trips for every rider, today."""
        receive_trips(partner=partner, payload={"trips": [trip(f"b{n}-{r}", ref=f"card-{r}") for r in range(8)]})
        commit_unit_of_work()

    calls = [lambda r=r, c=c: buy(r.id, c.id) for r in riders for c in campaigns] + \
        [lambda n=n: batch(n) for n in range(4)]
    results = run_at_once(app, calls)
    assert [r for r in results if r is not None] == []
    assert rollups.differences() == []
