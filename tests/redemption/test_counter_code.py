"""The counter code: 12 digits with a Damm check digit on every coupon, unique among issued coupons, taken by the
counter (API and page) in the same `code` field as the QR text; a store that keeps sending unknown codes is refused
for a while (429 too_many_attempts), and its owner sees it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from metropoints.core.db import commit_unit_of_work, db, rollback_unit_of_work
from metropoints.core.timeutil import utcnow
from metropoints.redemption import operations
from metropoints.redemption.codes import (
    damm_digit,
    format_counter_code,
    new_counter_code,
    normalise_counter_code,
)
from metropoints.redemption.counter import GUESS_LIMIT, GUESS_WINDOW
from metropoints.redemption.errors import TooManyAttempts, UnknownCode
from metropoints.redemption.models import Coupon, CouponStatus, UnknownCodeAttempt
from metropoints.redemption.operations import redeem, validate
from tests.campaigns import page_text
from tests.conftest import auth


def post_code(client, token: str, code, **extra):
    """POST /api/v1/counter/validate."""
    return client.post("/api/v1/counter/validate", json={"code": code, **extra}, headers=auth(token))


def unknown(n: int) -> str:
    """A well-formed counter code (its check digit verifies) that no coupon carries in these tests."""
    digits = f"{n:011d}"
    return digits + damm_digit(digits)


def test_check_digit_catches_every_single_error_and_adjacent_transposition():
    """Every code with one digit changed, or two different neighbours swapped, fails its check digit (Damm); a fresh
    code is 12 ASCII digits that pass it."""
    for _ in range(300):
        code = new_counter_code()
        assert re.fullmatch(r"[0-9]{12}", code) and normalise_counter_code(code) == code
        for i in range(12):
            for digit in "0123456789":
                if digit != code[i]:
                    assert normalise_counter_code(code[:i] + digit + code[i + 1:]) is None, (code, i, digit)
        for i in range(11):
            if code[i] != code[i + 1]:
                assert normalise_counter_code(code[:i] + code[i + 1] + code[i] + code[i + 2:]) is None, (code, i)
    digits = "09" + "123456789"  # 09 <-> 90: the transposition Luhn misses
    assert normalise_counter_code(digits + damm_digit(digits)) and normalise_counter_code(
        "90" + digits[2:] + damm_digit(digits)) is None


def test_counter_code_is_read_with_or_without_separators():
    """Spaces, dashes (any kind) and full-width digits are read as the 12 digits; anything else is not a code."""
    code = new_counter_code()
    shown = format_counter_code(code)
    assert re.fullmatch(r"\d{4}-\d{4}-\d{4}", shown) and shown.replace("-", "") == code
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in code)
    for typed in (code, shown, f" {code[:4]} {code[4:8]} {code[8:]} ", code[:6] + "\u2013" + code[6:], full_width,
                  f"{code[:4]}－{code[4:8]}　{code[8:]}"):
        assert normalise_counter_code(typed) == code, typed
    for typed in (code[:-1], code + "0", "a" + code[1:], None, 12, int(code), "1" * 70, "", code[:6] + "." + code[6:]):
        assert normalise_counter_code(typed) is None, typed


def test_every_coupon_carries_one_shown_in_the_rider_api(client, create_shop, create_campaign, create_riders,
                                                          rider_token):
    """The redemption reply and the coupon list carry the coupon's counter code (12 digits); qr.svg writes it
    4-4-4 under the QR."""
    shop = create_shop()
    campaign = create_campaign(shop)
    token = rider_token(create_riders()[0])
    reply = client.post("/api/v1/redemptions", json={"campaign_id": campaign.id},
                        headers={**auth(token), "Idempotency-Key": "k1"})
    assert reply.status_code == 201, reply.get_json()
    body = reply.get_json()
    assert normalise_counter_code(body["counter_code"]) == body["counter_code"]
    assert db.session.get(Coupon, body["coupon_id"]).counter_code == body["counter_code"]
    items = client.get("/api/v1/me/coupons", headers=auth(token)).get_json()["items"]
    assert [item["counter_code"] for item in items] == [body["counter_code"]]
    svg = client.get(f"/api/v1/me/coupons/{body['coupon_id']}/qr.svg", headers=auth(token)).get_data(as_text=True)
    assert f">{format_counter_code(body['counter_code'])}</text>" in svg and "viewBox" in svg


def test_validate_by_counter_code(client, bought, token_for):
    """The POS takes the counter code in `code`, with or without dashes: accepted once; the coupon is used."""
    shop, campaign, rider, result = bought
    token = token_for(shop.cashier)
    reply = post_code(client, token, format_counter_code(result.counter_code))
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json() == {"result": "accepted", "coupon_id": result.coupon_id, "title": campaign.title,
                                "rider_display_name": rider.display_name, "store_id": shop.store.id}
    db.session.expire_all()
    assert db.session.get(Coupon, result.coupon_id).status == CouponStatus.used
    # The QR text still says why it is refused; the number is looked up among issued coupons only.
    assert post_code(client, token, result.code).get_json()["error"]["code"] == "already_used"
    assert post_code(client, token, result.counter_code).get_json()["error"]["code"] == "unknown_code"


def test_counter_code_follows_the_same_rules(client, bought, create_shop, token_for):
    """By counter code as by QR: another merchant's cashier gets wrong_merchant, a store the campaign is not valid
    at wrong_store, a mistyped digit unknown_code; the coupon stays usable."""
    shop, _, _, result = bought
    code = result.counter_code
    stranger = create_shop()
    assert post_code(client, token_for(stranger.cashier), code).get_json()["error"]["code"] == "wrong_merchant"
    assert post_code(client, token_for(shop.other_cashier), code).get_json()["error"]["code"] == "wrong_store"
    typo = code[:3] + str((int(code[3]) + 1) % 10) + code[4:]
    reply = post_code(client, token_for(shop.cashier), typo)
    assert (reply.status_code, reply.get_json()["error"]["code"]) == (404, "unknown_code")
    assert post_code(client, token_for(shop.cashier), code).status_code == 200


def test_unique_among_issued_coupons_only(bought):
    """Two issued coupons never share a counter code (the partial unique index); a used coupon's number may come
    back on a new one."""
    from sqlalchemy.exc import IntegrityError

    shop, campaign, rider, result = bought

    def twin(status: CouponStatus, n: int) -> Coupon:
        coupon = Coupon(campaign_id=campaign.id, rider_id=rider.id, code=f"TWIN-{n}", counter_code=result.counter_code,
                        status=status, points_spent=1, expires_at=utcnow() + timedelta(days=1),
                        used_at=utcnow() if status == CouponStatus.used else None)
        db.session.add(coupon)
        db.session.flush()
        return coupon

    twin(CouponStatus.used, 1)  # allowed: not issued
    commit_unit_of_work()
    with pytest.raises(IntegrityError):
        twin(CouponStatus.issued, 2)
    db.session.rollback()
    assert validate(cashier=shop.cashier, code=result.counter_code).coupon_id == result.coupon_id
    commit_unit_of_work()
    assert twin(CouponStatus.issued, 3).id  # its number is free again once the first was used
    commit_unit_of_work()


@pytest.mark.parametrize("clashes", [1, 3])
def test_a_clash_draws_a_fresh_code_and_keeps_the_books(clashes, monkeypatch, bought, create_riders, books):
    """A counter code an issued coupon already carries is never issued twice: the purchase gets a fresh one in the
    same transaction, its points, stock and ledger entry exactly once."""
    _, campaign, _, first = bought
    fresh = [first.counter_code] * clashes + [new_counter_code()]
    monkeypatch.setattr(operations, "new_counter_code", lambda: fresh.pop(0))
    rider = create_riders()[0]
    second = redeem(rider_id=rider.id, campaign_id=campaign.id)
    commit_unit_of_work()
    assert second.counter_code != first.counter_code and not fresh
    assert db.session.get(Coupon, second.coupon_id).counter_code == second.counter_code
    assert second.balance_after == 1000 - campaign.point_price
    issued = db.session.scalars(select(Coupon.counter_code).where(Coupon.status == CouponStatus.issued)).all()
    assert len(issued) == len(set(issued)) == 2
    books()


def test_guess_limit_refuses_the_store_for_a_while(client, bought, token_for):
    """After 10 unknown codes (numbers or forged QR texts) in 10 minutes a store's counter is refused, a good code
    too: 429 too_many_attempts with when it opens (+08:00); the merchant's other store is not."""
    shop, _, _, result = bought
    token = token_for(shop.cashier)
    for n in range(GUESS_LIMIT):
        code = unknown(n) if n % 2 else "A" * 26 + "." + "A" * 16
        reply = post_code(client, token, code)
        assert (reply.status_code, reply.get_json()["error"]["code"]) == (404, "unknown_code"), n
    tries = db.session.scalars(select(UnknownCodeAttempt.at).where(UnknownCodeAttempt.store_id == shop.store.id)
                               .order_by(UnknownCodeAttempt.at)).all()
    assert len(tries) == GUESS_LIMIT
    reply = post_code(client, token, result.code)
    error = reply.get_json()["error"]
    assert (reply.status_code, error["code"], error["attempts"]) == (429, "too_many_attempts", GUESS_LIMIT)
    assert error["until"].endswith("+08:00") and datetime.fromisoformat(error["until"]) == tries[0] + GUESS_WINDOW
    assert 0 < int(reply.headers["Retry-After"]) <= GUESS_WINDOW.total_seconds()
    db.session.expire_all()
    assert db.session.get(Coupon, result.coupon_id).status == CouponStatus.issued
    # A refusal while refused adds nothing, so the counter opens when it said.
    assert db.session.scalar(select(func.count()).select_from(UnknownCodeAttempt)) == GUESS_LIMIT
    other = post_code(client, token_for(shop.other_cashier), unknown(99))
    assert other.get_json()["error"]["code"] == "unknown_code"


def test_the_counter_opens_when_the_window_frees_up(bought):
    """The counter is refused until the oldest of the 10 unknown codes is 10 minutes old, then takes codes again;
    each unknown code is written even though its refusal rolls the unit of work back, and older ones are pruned."""
    shop, _, _, result = bought
    start = utcnow()
    for n in range(GUESS_LIMIT):
        with pytest.raises(UnknownCode):
            validate(cashier=shop.cashier, code=unknown(n), now=start + timedelta(seconds=n))
        rollback_unit_of_work()
    with pytest.raises(TooManyAttempts) as refused:
        validate(cashier=shop.cashier, code=result.code, now=start + GUESS_WINDOW - timedelta(seconds=1))
    rollback_unit_of_work()
    assert refused.value.fields["until"] == start + GUESS_WINDOW
    opened = start + GUESS_WINDOW
    with pytest.raises(UnknownCode):  # one try freed up: the counter answers, and this unknown code counts again
        validate(cashier=shop.cashier, code=unknown(50), now=opened)
    rollback_unit_of_work()
    with pytest.raises(TooManyAttempts):
        validate(cashier=shop.cashier, code=result.code, now=opened)
    rollback_unit_of_work()
    assert db.session.scalar(select(func.count()).select_from(UnknownCodeAttempt)) == GUESS_LIMIT  # the first pruned
    assert validate(cashier=shop.cashier, code=result.code, now=opened + timedelta(seconds=1)).coupon_id
    commit_unit_of_work()


def test_the_lock_is_in_the_audit_log_once(client, bought, token_for):
    """The unknown code that locks a store's counter is recorded in the audit log, once, with the store and until
    when; the tries before it are not."""
    from metropoints.core.models import AuditEntry

    shop, _, _, _ = bought
    token = token_for(shop.cashier)
    for n in range(GUESS_LIMIT + 3):
        post_code(client, token, unknown(n))
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "counter.lock")).all()
    assert [(e.subject, e.actor_id) for e in entries] == [(f"store:{shop.store.id}", shop.cashier.id)]
    assert "10 unknown codes" in entries[0].reason and "+08:00" in entries[0].reason


def test_active_counter_locks(bought):
    """active_counter_locks names each of the merchant's stores refused now: its name, its unknown codes and until
    when; not before the limit, not after the window, not another merchant's."""
    from metropoints.redemption.queries import active_counter_locks

    shop, _, _, _ = bought
    start = utcnow()
    for n in range(GUESS_LIMIT):
        assert active_counter_locks(merchant_id=shop.merchant.id, now=start + timedelta(seconds=n)) == []
        with pytest.raises(UnknownCode):
            validate(cashier=shop.cashier, code=unknown(n), now=start + timedelta(seconds=n))
        rollback_unit_of_work()
    locks = active_counter_locks(merchant_id=shop.merchant.id, now=start + timedelta(seconds=30))
    assert [(lock.store_id, lock.store_name, lock.attempts, lock.until) for lock in locks] == [
        (shop.store.id, shop.store.name, GUESS_LIMIT, start + GUESS_WINDOW)]
    assert active_counter_locks(merchant_id=shop.merchant.id, now=start + GUESS_WINDOW) == []
    assert active_counter_locks(merchant_id=shop.merchant.id, now=start, store_id=shop.other_store.id) == []
    assert active_counter_locks(merchant_id=shop.merchant.id + 1, now=start + timedelta(seconds=30)) == []


def lock_store(shop, now=None) -> None:
    """Send the shop's first store GUESS_LIMIT unknown codes (each recorded as its request would)."""
    for n in range(GUESS_LIMIT):
        with pytest.raises(UnknownCode):
            validate(cashier=shop.cashier, code=unknown(n), now=now)
        rollback_unit_of_work()


def test_owner_sees_the_locked_store_on_counter_and_activity_pages(client, login, bought):
    """The owner's counter page and activity page name the locked store, its unknown codes and until when; the
    cashier's counter page too, and a code typed there is refused with that time."""
    from flask_babel import refresh

    from metropoints.core.templating import local_datetime
    from metropoints.redemption.queries import active_counter_locks

    shop, _, _, result = bought
    lock_store(shop)
    until = local_datetime(active_counter_locks(merchant_id=shop.merchant.id)[0].until)
    expected = f"{shop.store.name}: {GUESS_LIMIT} unknown codes in the last 10 minutes; its counter is refused " \
               f"until {until}."
    login(shop.owner)
    for path in ("/portal/counter", "/portal/activity", f"/portal/counter?store_id={shop.other_store.id}"):
        assert expected in page_text(client, path)[1], path
    login(shop.cashier)
    assert expected in page_text(client, "/portal/counter")[1]
    refresh()
    reply = client.post("/portal/counter/validate", json={"code": result.counter_code},
                        headers={"Accept-Language": "en"})
    body = reply.get_json()
    assert (reply.status_code, body["code"]) == (429, "too_many_attempts")
    assert body["message"] == f"Too many unknown codes: this counter is refused until {until}"
    assert body["until"].endswith("+08:00")
    status, html = page_text(client, "/portal/counter", "post", data={"code": result.counter_code})
    assert status == 429 and f"this counter is refused until {until}" in html


def test_counter_page_takes_the_number(client, login, bought):
    """The counter page has a numeric field for the number under the QR, posting the same `code` field; a typed
    number with dashes is accepted by the form post and by the page's script."""
    shop, _, _, result = bought
    login(shop.cashier)
    _, html = page_text(client, "/portal/counter")
    assert re.search(r'<input id="counter-number"[^>]*name="code"[^>]*inputmode="numeric"', html), html
    status, html = page_text(client, "/portal/counter", "post", data={"code": format_counter_code(result.counter_code)})
    assert status == 200 and "Accepted" in html
    db.session.expire_all()
    assert db.session.get(Coupon, result.coupon_id).status == CouponStatus.used


def test_a_validation_by_number_is_three_statements(client, bought, token_for):
    """A good scan by counter code costs what a QR scan does: the token, the facts (the guess limit read with
    them) and the guarded use."""
    from tests.redemption.test_round_trips import statements

    shop, _, _, result = bought
    token = token_for(shop.cashier)
    with statements() as sent:
        assert post_code(client, token, result.counter_code).status_code == 200
    assert len(sent) == 3, sent


def test_facts_find_a_coupon_by_either_code_through_an_index(bought):
    """The facts query finds the coupon through the code's unique index, or the issued counter codes' partial one,
    and the store's unknown codes through theirs (so it reads no more rows as coupons and tries pile up)."""
    from metropoints.redemption.counter import _COUNTER_FACTS

    shop, _, _, result = bought
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    for code, counter_code, index in ((result.code, None, "uq_coupons_code"),
                                      (None, result.counter_code, "ix_coupons_counter_code_issued")):
        plan = "\n".join(row[0] for row in db.session.execute(
            text("EXPLAIN " + _COUNTER_FACTS.element.text),
            {"user": shop.cashier.id, "store": None, "code": code, "counter_code": counter_code,
             "since": utcnow(), "offset": GUESS_LIMIT - 1}))
        assert f"Index Scan using {index} on coupons" in plan, plan
        assert "ix_unknown_code_attempts_store_at" in plan, plan
    db.session.rollback()
