"""A statement names whom it bills and who bills: the merchant (name, unified social credit code, contact, store
address) and the platform (name, operator, address, tax id, contact e-mail, from the PLATFORM_* settings), with its
invoice number, month, issue and due dates, on its page and on its printed copy."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from metropoints.core.config import load_config
from metropoints.core.db import commit_unit_of_work
from metropoints.core.templating import local_datetime
from metropoints.settlement.models import StatementStatus
from tests.conftest import SHOP_PASSWORD
from tests.marketplace.conftest import login, page
from tests.settlement.conftest import AFTER_OCTOBER
from tests.settlement.test_pages import october, operator

PLATFORM = {"PLATFORM_NAME": "沈阳地铁碳积分平台 / Shenyang Metro Carbon Points",
            "PLATFORM_LEGAL_NAME": "沈阳地铁集团有限公司", "PLATFORM_ADDRESS": "沈阳市和平区青年大街 1 号",
            "PLATFORM_TAX_ID": "91210100MA0TEST01X", "PLATFORM_CONTACT_EMAIL": "finance@metro.example"}


def test_the_statement_and_its_printed_copy_name_both_parties(app, client, create_shop, month_of_coupons):
    """The owner's statement page and printed copy show the merchant's name, licence number, contact and store
    address, the platform's name, operator, address, tax id and contact, and the invoice number, the month and the
    issue and due dates; the back office's copy shows the same parties."""
    saved = {key: app.config[key] for key in PLATFORM}
    app.config.update(PLATFORM)
    try:
        shop, statement = october(create_shop, month_of_coupons)
        statement.status, statement.invoice_number = StatementStatus.issued, "MP-2026-10-0001"
        statement.issued_at, statement.due_at = AFTER_OCTOBER, AFTER_OCTOBER + timedelta(days=15)
        commit_unit_of_work()
        login(client, shop.owner.email, SHOP_PASSWORD)
        expected = [shop.merchant.name, shop.merchant.licence_no, shop.merchant.contact_name,
                    shop.merchant.contact_phone, shop.owner.email, shop.store.address, *PLATFORM.values(),
                    "mailto:finance@metro.example", "MP-2026-10-0001", "2026-10",
                    local_datetime(statement.issued_at), local_datetime(statement.due_at),
                    "Billed by", "Billed to", "Unified social credit code", "Tax ID (unified social credit code)"]
        for path in (f"/portal/statements/{statement.id}", f"/portal/statements/{statement.id}/print"):
            text = page(client, path).get_data(as_text=True)
            missing = [value for value in expected if value not in text]
            assert missing == [], (path, missing)
        printed = page(client, f"/portal/statements/{statement.id}/print").get_data(as_text=True)
        assert "<h1>沈阳地铁碳积分平台 / Shenyang Metro Carbon Points — Statement 2026-10</h1>" in printed
        operator(client)
        backoffice = page(client, f"/backoffice/statements/{statement.id}").get_data(as_text=True)
        assert shop.merchant.licence_no in backoffice and "91210100MA0TEST01X" in backoffice
    finally:
        app.config.update(saved)


def test_an_empty_platform_setting_is_left_off(app, client, create_shop, month_of_coupons):
    """The default has no tax id: the statement shows no empty tax id line; the default name, operator and
    contact are shown, and an unissued statement says its invoice number is not issued yet."""
    shop, statement = october(create_shop, month_of_coupons)
    login(client, shop.owner.email, SHOP_PASSWORD)
    text = page(client, f"/portal/statements/{statement.id}").get_data(as_text=True)
    assert "Tax ID" not in text and 'data-field="platform_tax_id"' not in text
    assert app.config["PLATFORM_NAME"] in text and app.config["PLATFORM_LEGAL_NAME"] in text
    assert app.config["PLATFORM_CONTACT_EMAIL"] in text and "not issued yet" in text


def test_platform_settings_come_from_the_environment(monkeypatch):
    """Each PLATFORM_* setting has a default in code and is read from FLASK_PLATFORM_* in the environment."""
    defaults = Flask("defaults")
    load_config(defaults)
    assert defaults.config["PLATFORM_NAME"] == "沈阳地铁碳积分平台 / Shenyang Metro Carbon Points"
    assert defaults.config["PLATFORM_CONTACT_EMAIL"] and defaults.config["PLATFORM_TAX_ID"] == ""
    for key, value in PLATFORM.items():
        monkeypatch.setenv(f"FLASK_{key}", value)
    configured = Flask("configured")
    load_config(configured)
    assert {key: configured.config[key] for key in PLATFORM} == PLATFORM
