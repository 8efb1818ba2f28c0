"""Headline figures and their daily series match the rows behind them, day by day in Asia/Shanghai.

The fixture writes some rows directly (registration times, coupons), as history a migration brings along, and then
rebuilds the rollups from the raw rows; the pages read only the rollups.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

import pytest

from metropoints.accrual.operations import receive_trips
from metropoints.campaigns.models import CampaignStatus
from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.timeutil import SERVICE_OFFSET, service_day, utcnow
from metropoints.marketplace.models import MerchantStatus
from metropoints.redemption.models import Coupon, CouponStatus
from metropoints.reports import queries, rollups
from tests.helpers import trip
from tests.modes import credit_trip


def today() -> date:
    """Today's service day."""
    return service_day(utcnow())


def local(days_back: int, hour: int = 12, minutes: int = 0) -> datetime:
    """A wall-clock time in Shenyang, `days_back` service days ago."""
    return datetime.combine(today() - timedelta(days=days_back), time(hour), tzinfo=SERVICE_OFFSET) \
        + timedelta(minutes=minutes)


def by_day(series: queries.Series) -> dict[int, int]:
    """A series keyed by days back from today."""
    return {(today() - day).days: value for day, value in series.points()}


@pytest.fixture
def city(app, create_rider, create_partner, create_merchant, create_campaign):
    """A small city: riders registered over time, trips (credited, capped, held), redemptions, merchants and
    campaigns in every state that matters."""
    alice = create_rider(links=[("afc", "card-1")])  # registered now
    early = create_rider()
    early.created_at = local(2, hour=7)  # 07:00 in Shenyang is 23:00 UTC the day before: counts on day -2
    old = create_rider()
    old.created_at = utcnow() - timedelta(days=40)
    commit_unit_of_work()

    partner, _ = create_partner()
    rows = [trip(f"d2-{i:02d}", exited_at=local(2, minutes=25 * i)) for i in range(11)]  # 10 x 6 points, 1 capped
    rows += [trip("d1", exited_at=local(1)), trip("d10", exited_at=local(10)), trip("held", ref="card-x",
                                                                                 exited_at=local(1))]
    result = receive_trips(partner=partner, payload={"trips": rows})
    assert (result.credited, result.capped, result.held) == (12, 1, 1)

    shop = create_merchant(MerchantStatus.approved, decided_at=local(2, hour=7))
    create_merchant(MerchantStatus.approved, decided_at=local(20))
    create_merchant(MerchantStatus.applied)
    banned = create_merchant(MerchantStatus.suspended, decided_at=local(3))
    live = create_campaign(shop, decided_at=local(1))
    create_campaign(shop, stock_left=0)  # sold out
    create_campaign(shop, valid_from=utcnow() + timedelta(days=1))  # not on sale yet
    create_campaign(shop, valid_until=utcnow() - timedelta(minutes=1), valid_from=utcnow() - timedelta(days=3),
                    decided_at=local(5))  # sale over
    create_campaign(shop, status=CampaignStatus.paused, decided_at=local(1))
    create_campaign(banned, decided_at=local(1))  # its merchant is suspended
    # Two orders, on days -1 and -9; the second one cancelled on day -1 (a refund is not an order).
    db.session.add_all([
        Coupon(campaign_id=live.id, rider_id=alice.id, code="c1", status=CouponStatus.issued, points_spent=10,
               issued_at=local(1), expires_at=local(-20)),
        Coupon(campaign_id=live.id, rider_id=alice.id, code="c2", status=CouponStatus.cancelled, points_spent=10,
               issued_at=local(9), expires_at=local(-20), cancelled_at=local(1))])
    rollups.rebuild()
    commit_unit_of_work()
    return alice


def test_headline_figures(city):
    """Riders, redemption orders, approved/total merchants, live campaigns, points issued for trips and grams
    CO2e of credited and capped trips (not held ones) are what the rows say."""
    k = queries.kpis(7)
    assert k.riders == 3
    assert k.redemptions == 2  # a refund is not an order
    assert (k.merchants_approved, k.merchants_total) == (2, 4)
    assert k.live_campaigns == 1
    assert k.points_issued == 10 * 6 + 6 + 6
    assert k.co2e_grams == 13 * 267


def test_series_are_cumulative_on_the_right_days(city):
    """Cumulative series start from what came before the window and step up on the Asia/Shanghai day of each
    row: a rider registered at 07:00 in Shenyang counts that day, not the UTC day before."""
    k = queries.kpis(7)
    assert [d for d, _ in k.riders_series.points()] == [today() - timedelta(days=n) for n in range(6, -1, -1)]
    assert by_day(k.riders_series) == {6: 1, 5: 1, 4: 1, 3: 1, 2: 2, 1: 2, 0: 3}
    assert by_day(k.points_series) == {6: 6, 5: 6, 4: 6, 3: 6, 2: 66, 1: 72, 0: 72}
    assert by_day(k.co2e_series) == {6: 267, 5: 267, 4: 267, 3: 267, 2: 12 * 267, 1: 13 * 267, 0: 13 * 267}
    assert by_day(k.redemptions_series) == {6: 1, 5: 1, 4: 1, 3: 1, 2: 1, 1: 2, 0: 2}
    assert by_day(k.merchants_series) == {6: 1, 5: 1, 4: 1, 3: 1, 2: 2, 1: 2, 0: 2}


def test_campaigns_approved_is_per_day(city):
    """The campaign series counts the approved campaigns decided on each day (not cumulative, not paused)."""
    k = queries.kpis(7)
    assert by_day(k.campaigns_approved_series) == {6: 0, 5: 1, 4: 0, 3: 0, 2: 0, 1: 2, 0: 2}


def test_co2e_traces_to_named_factors(city):
    """Every gram reported is listed under the rule version whose factor computed it (trips x km x factor)."""
    (use,) = queries.kpis(30).factors
    assert (use.version_id, use.co2e_mg_per_km, use.trips, use.metres) == (1, 44_000, 13, 13 * 6065)
    assert use.factor_name.startswith("Shenyang Metro 2025")
    # Each trip is rounded to whole grams on its own: 6.065 km x 44 g/km = 266.86 -> 267.
    assert use.grams == use.trips * round(6065 * use.co2e_mg_per_km / 1_000_000) == queries.kpis(30).co2e_grams


def test_period_choice(city, operator, get_en):
    """?days= takes 7, 30, 90 or 365; anything else is 30."""
    assert [queries.parse_period(v) for v in ("7", "90", "365", "30", "31", "x", None)] == [7, 90, 365, 30, 30, 30, 30]
    assert len(queries.kpis(365).points_series.days) == 365
    html = get_en("/backoffice/?days=90").get_data(as_text=True)
    assert 'href="/backoffice/?days=90" aria-current="page"' in html
    assert html.count("<polyline") == 6


def figure(html: str, key: str) -> str:
    """The big number on a KPI card."""
    return re.search(rf'data-kpi="{key}">([^<]*)<', html).group(1)


def test_kpi_page_shows_the_figures(city, operator, get_en):
    """The page has six cards with their figures, each with a chart, and the CO2e factor used."""
    reply = get_en("/backoffice/?days=7")
    html = reply.get_data(as_text=True)
    assert reply.status_code == 200
    assert {key: figure(html, key) for key in ("riders", "redemptions", "merchants", "campaigns", "points", "co2e")} \
        == {"riders": "3", "redemptions": "2", "merchants": "2", "campaigns": "1", "points": "72", "co2e": "0.0"}
    assert "approved, of 4 merchants" in html
    assert html.count('<svg class="chart"') == 6 and html.count("<title id=") == 6
    assert "Rule v1: 44 g/km (Shenyang Metro 2025" in html


def test_big_numbers_have_thousands_separators(app, operator, get_en):
    """Figures are printed with thousands separators; CO2e in tonnes with one decimal."""
    from sqlalchemy import text

    db.session.execute(text(
        "INSERT INTO riders (phone, password_hash, display_name, points_balance, created_at) "
        "SELECT '1500000' || lpad(g::text, 4, '0'), 'x', 'r' || g, 0, now() FROM generate_series(1, 1234) g"))
    rollups.rebuild()
    commit_unit_of_work()
    html = get_en("/backoffice/").get_data(as_text=True)
    assert figure(html, "riders") == "1,234"
    from metropoints.reports.views import tonnes

    assert (tonnes(1_934_567_890), tonnes(50_000), tonnes(0)) == ("1,934.6", "0.1", "0.0")


def test_empty_platform(app, operator, get_en):
    """With nothing yet, every figure is 0 and the charts lie flat (no error, no division by zero)."""
    html = get_en("/backoffice/").get_data(as_text=True)
    assert [figure(html, key) for key in ("riders", "points", "co2e")] == ["0", "0", "0.0"]
    assert "No trips credited yet." in html


def mode_row(html: str, mode: str) -> list[str]:
    """The cells of a mode's row in the KPI page's table by mode."""
    row = re.search(rf'<tr data-mode="{mode}">(.*?)</tr>', html, re.S).group(1)
    return [cell.strip() for cell in re.findall(r"<td[^>]*>([^<]*)</td>", row)]


def test_kpi_page_splits_by_mode(city, operator, get_en):
    """The table by mode has each mode's trips, km, CO2e and points in the period and in all, from the rollup: metro's
    13 credited and capped trips (one 10 days back, outside 7 days), a bus ride and a walking day this week."""
    credit_trip(rider_id=city.id, mode="bus", metres=4321, exited_at=local(1, hour=18))
    credit_trip(rider_id=city.id, mode="walk", steps=8000, exited_at=local(3, hour=23))
    commit_unit_of_work()
    split = {s.mode.value: s for s in queries.kpis(7).modes}
    assert list(split) == ["metro", "bus", "bike", "walk"]
    assert split["metro"].period == queries.ModeFigures(12, 12 * 6065, 12 * 267, 66)
    assert split["metro"].total == queries.ModeFigures(13, 13 * 6065, 13 * 267, 72)
    assert split["bus"].period == split["bus"].total == queries.ModeFigures(1, 4321, 130, 4)
    assert split["walk"].total == queries.ModeFigures(1, 5600, 420, 5)
    assert split["bike"].total == queries.ModeFigures()
    html = get_en("/backoffice/?days=7").get_data(as_text=True)
    assert "By mode" in html
    assert mode_row(html, "metro") == ["Metro", "12", "72.8", "0.0 t", "66", "13", "78.8", "0.0 t", "72"]
    assert mode_row(html, "bus") == ["Bus", "1", "4.3", "0.0 t", "4", "1", "4.3", "0.0 t", "4"]
    assert mode_row(html, "walk") == ["Walking", "1", "5.6", "0.0 t", "5", "1", "5.6", "0.0 t", "5"]
    assert mode_row(html, "bike")[0] == "Shared bike"
