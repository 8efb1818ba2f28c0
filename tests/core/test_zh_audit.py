"""Audit entries read as words: every action the packages record has its label (so no page shows `merchant.approve`),
and the reasons the platform writes itself are shown in the page's language."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from flask_babel import force_locale

from metropoints.core.templating import AUDIT_ACTIONS, audit_action, audit_reason
from metropoints.marketplace.operations import DECISIONS

PACKAGE = Path(__file__).resolve().parents[2] / "metropoints"
LITERAL_ACTION = re.compile(r'action="([a-z_]+(?:\.[a-z_]+)+)"|_owner_move\([^)]*?"([a-z_]+(?:\.[a-z_]+)+)"')


def recorded_actions() -> set[str]:
    """The audit actions the source records: literal `action="..."` arguments, the owner's moves of a campaign,
    and `merchant.<decision>` for each merchant decision."""
    found = {f"merchant.{decision}" for decision in DECISIONS}
    for path in PACKAGE.rglob("*.py"):
        for literal, move in LITERAL_ACTION.findall(path.read_text(encoding="utf-8")):
            found.add(literal or move)
    return found


def test_every_recorded_action_has_words():
    """Each action the packages pass to record_audit has a label in core.templating.AUDIT_ACTIONS."""
    assert recorded_actions() - AUDIT_ACTIONS.keys() == set()


def test_actions_and_platform_reasons_in_chinese(app):
    """In zh an action is Chinese words, and a reason the platform wrote (fees in fen, an ISO moment) reads in
    Chinese with yuan and Shenyang time; a reason a person typed is shown as typed."""
    lock = SimpleNamespace(action="counter.lock",
                           reason="10 unknown codes within 15 minutes; refused until 2026-12-02T10:30:00+08:00")
    fees = SimpleNamespace(action="settlement.fee_plan", reason="from 2027-01: 300 fen per used coupon, 0 fen monthly")
    typed = SimpleNamespace(action="merchant.reject", reason="licence photo is blurry")
    with app.test_request_context(), force_locale("zh"):
        assert audit_action("merchant.approve") == "商户审核通过"
        assert audit_reason(lock) == "15 分钟内输入 10 个无效券码；2026-12-02 10:30 前暂停核销"
        assert audit_reason(fees) == "自 2027-01 起：每核销一张优惠券 ¥3.00，每月 ¥0.00"
        assert audit_reason(typed) == "licence photo is blurry"
    with app.test_request_context(), force_locale("en"):
        assert audit_action("merchant.approve") == "Merchant approved"
        assert audit_reason(fees) == "from 2027-01: ¥3.00 per used coupon, ¥0.00 a month"
