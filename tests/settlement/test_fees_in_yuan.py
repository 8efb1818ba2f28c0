"""Money typed in yuan, kept in fen: the fee form takes yuan with up to two decimals and keeps exact integer fen;
anything else is a message on the form, never a 500; every settlement page and mail writes amounts as ¥1,234.56
through one formatter."""

from __future__ import annotations

import pytest
from flask import render_template_string
from sqlalchemy import select
from wtforms.validators import ValidationError

from metropoints.core.db import db
from metropoints.core.templating import yuan
from metropoints.settlement.forms import parse_yuan, yuan_text
from metropoints.settlement.models import FeePlan
from tests.marketplace.conftest import page
from tests.settlement.test_pages import operator


@pytest.mark.parametrize(("typed", "fen"), [
    ("1.50", 150), ("1.5", 150), ("1", 100), ("0", 0), ("0.01", 1), (".5", 50), ("2.", 200), (" 3.20 ", 320),
    ("¥2.00", 200), ("￥ 2", 200), ("0.29", 29), ("1.15", 115), ("8.20", 820), ("100000.00", 10_000_000),
    ("000012.30", 1230),
])
def test_yuan_typed_becomes_exact_fen(typed, fen):
    """Yuan with up to two decimals become exact integer fen (0.29 and 1.15, which binary floats get wrong, too)."""
    assert parse_yuan(typed) == fen
    assert type(parse_yuan(typed)) is int


@pytest.mark.parametrize(("typed", "says"), [
    ("", "Type an amount"), ("   ", "Type an amount"), ("-1", "negative"), ("-0.50", "negative"),
    ("1.505", "two decimals"), ("0.001", "two decimals"), ("100000.01", "At most ¥100,000.00"),
    ("99999999999", "At most"), ("1" * 40, "At most"), ("1e3", "digits"), ("NaN", "digits"), ("Infinity", "digits"),
    ("1,000", "digits"), ("1.2.3", "digits"), (".", "digits"), ("+1", "digits"), ("١٢", "digits"), ("²", "digits"),
    ("12\x00", "digits"), ("0x10", "digits"), ("1 000", "digits"),
])
def test_other_input_is_refused_with_what_to_type(app, typed, says):
    """Negative amounts, more than two decimals, amounts above the maximum and anything that is not plain ASCII
    digits with a point are refused with a message saying what to type."""
    with app.test_request_context(headers={"Accept-Language": "en"}):
        with pytest.raises(ValidationError) as refused:
            parse_yuan(typed)
        assert says in str(refused.value.args[0])


def test_one_formatter_for_pages_and_mails(app):
    """Integer fen are written as yuan one way: the `yuan` filter on pages is the function mails call, and the
    fee form shows stored fen back as the yuan an operator types."""
    assert (yuan(123456), yuan(5), yuan(0), yuan(None), yuan(-250)) == ("¥1,234.56", "¥0.05", "¥0.00", "¥0.00",
                                                                       "-¥2.50")
    with app.test_request_context():
        assert render_template_string("{{ 123456|yuan }} {{ 7|fen }}") == "¥1,234.56 ¥0.07"
    assert (yuan_text(150), yuan_text(0), yuan_text(10_000_000)) == ("1.50", "0.00", "100000.00")


def test_the_fee_form_takes_yuan_and_shows_them_back(app, client, create_shop):
    """An operator types 1.50 and 0.29 yuan; the plan keeps 150 and 29 fen, and the page shows ¥1.50 / ¥0.29 and
    fills the form with 1.50 / 0.29."""
    shop = create_shop()
    operator(client)
    reply = page(client, "/backoffice/fees", "POST", data={"merchant_id": str(shop.merchant.id),
                                                             "fee_per_coupon": "1.50", "monthly_fee": "0.29"})
    assert reply.status_code == 302
    plan = db.session.scalar(select(FeePlan))
    assert (plan.fee_per_coupon_fen, plan.monthly_fee_fen) == (150, 29)
    text = page(client, "/backoffice/fees").get_data(as_text=True)
    assert "¥1.50 per coupon, ¥0.29 monthly, from" in text
    assert 'name="fee_per_coupon"' in text and 'value="1.50"' in text and 'value="0.29"' in text
    assert "Fee per used coupon (yuan)" in text


@pytest.mark.parametrize("fields", [
    {"fee_per_coupon": "1.505", "monthly_fee": "0"},
    {"fee_per_coupon": "-1", "monthly_fee": "0"},
    {"fee_per_coupon": "100000.01", "monthly_fee": "0"},
    {"fee_per_coupon": "1", "monthly_fee": "NaN"},
    {"fee_per_coupon": "1e9", "monthly_fee": "1"},
    {"fee_per_coupon": "9" * 5000, "monthly_fee": "1"},
    {"fee_per_coupon": "1"},
    {"monthly_fee": "1"},
    {},
])
def test_bad_fees_are_form_messages_not_errors(app, client, create_shop, fields):
    """A refused amount, or a missing one, answers 422 with the field's message next to it and the typed value
    kept; nothing is stored."""
    shop = create_shop()
    operator(client)
    reply = page(client, "/backoffice/fees", "POST", data={"merchant_id": str(shop.merchant.id), **fields})
    text = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert 'class="error" data-field="' in text
    assert db.session.scalar(select(FeePlan)) is None


@pytest.mark.parametrize("body", [
    b"merchant_id=%s&fee_per_coupon=%ff%fe&monthly_fee=1",
    b"merchant_id=%s&fee_per_coupon=\xff\xfe\x00&monthly_fee=\x00",
    b"merchant_id=%s&fee_per_coupon=1%00&monthly_fee=1",
    b"merchant_id=%s&fee_per_coupon=%ef%bc%91&monthly_fee=0",
    b"merchant_id=%s&fee_per_coupon=1&fee_per_coupon=2&monthly_fee=0&monthly_fee=x",
    b"merchant_id=%s&fee_per_coupon[]=1&monthly_fee=0",
    b"\xff\xfe=\x00&merchant_id=%s",
])
def test_any_bytes_posted_to_the_fee_form_are_answered_without_a_500(app, client, create_shop, body):
    """Whatever bytes the form receives (invalid UTF-8, NUL, full-width digits, repeated or odd fields), the reply
    is a 4xx, not a 500, and no fee is stored unless the amounts are valid yuan."""
    shop = create_shop()
    operator(client)
    reply = page(client, "/backoffice/fees", "POST", data=body.replace(b"%s", str(shop.merchant.id).encode()),
                 content_type="application/x-www-form-urlencoded")
    assert reply.status_code in (302, 400, 404, 422), reply.status_code
    plans = db.session.scalars(select(FeePlan)).all()
    assert reply.status_code == 302 or plans == []


@pytest.mark.parametrize("merchant_id", ["²", "١", "12a", "-1", "", "1" * 40, "\x00"])
def test_a_merchant_id_that_is_not_ascii_digits_is_a_404_or_a_form_error(app, client, create_shop, merchant_id):
    """The merchant id is posted by the page; any other value (digits of other scripts, signs, NUL, huge) answers
    404 or 422, never a 500."""
    create_shop()
    operator(client)
    reply = page(client, "/backoffice/fees", "POST", data={"merchant_id": merchant_id, "fee_per_coupon": "1",
                                                             "monthly_fee": "0"})
    assert reply.status_code in (404, 422)
