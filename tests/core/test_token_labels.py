"""Token labels in the back office and the `flask tokens` commands: an operator names a partner's, kiosk's or staff
token (at most the column's 120 characters, not empty, no control characters; a bad label is a message on the form,
never a 500), audited with the old and the new label; the token list still says whose a relabelled token is; a rider
token's label is the platform's. `flask tokens list / revoke / label` call the same operations."""

from __future__ import annotations

import re

import pytest
from conftest import SHOP_PASSWORD, auth

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import ApiToken, AuditEntry, Role, TokenKind
from metropoints.core.operations import (
    MAX_TOKEN_LABEL,
    LabelNotEditable,
    TokenLabelControlCharacters,
    create_user,
    hash_token,
    issue_token,
    set_token_label,
)
from metropoints.core.templating import AUDIT_ACTIONS
from metropoints.kiosk.operations import create_kiosk

PASSWORD = "correct-horse"
PAGE = "/backoffice/tokens/"


@pytest.fixture
def operator(client):
    """An operator, logged in on the test client, reading English."""
    user = create_user(email="ops@metro.example", password=PASSWORD, role=Role.operator)
    commit_unit_of_work()
    assert client.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 302
    client.get("/lang/en")
    return user


def stored(raw: str) -> ApiToken:
    """A raw token's row, as the database has it now."""
    return db.session.scalars(db.select(ApiToken).where(ApiToken.token_hash == hash_token(raw))
                              .execution_options(populate_existing=True)).one()


def audits(action: str) -> list[AuditEntry]:
    """The audit entries of an action, oldest first."""
    return list(db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_an_operator_relabels_a_partner_token_and_it_stays_the_partners(client, operator, create_partner):
    """The label page saves a new label, audited (who, old → new); the list shows it, still names the partner, and
    the partner's name still finds the token; the token keeps working."""
    _, raw = create_partner(name="Shengjing Bus")
    token = stored(raw)
    page = client.get(f"{PAGE}{token.id}/label")
    assert page.status_code == 200 and 'maxlength="120"' in page.get_data(as_text=True)
    assert f'href="/backoffice/tokens/{token.id}/label"' in client.get(PAGE).get_data(as_text=True)
    reply = client.post(f"{PAGE}{token.id}/label", data={"label": "  AFC gateway, rack 2  "})
    assert reply.status_code == 302 and reply.headers["Location"].endswith("?kind=partner")
    assert stored(raw).label == "AFC gateway, rack 2"
    (entry,) = audits("token.label")
    assert (entry.actor_id, entry.subject) == (operator.id, f"token:{token.id}")
    assert entry.reason == "partner Shengjing Bus → AFC gateway, rack 2"
    listed = client.get(PAGE, query_string={"q": "Shengjing Bus"}).get_data(as_text=True)
    assert "Shengjing Bus" in listed and "AFC gateway, rack 2" in listed
    assert client.post("/api/v1/trips", json={"trips": []}, headers=auth(raw)).status_code == 200


def test_kiosk_and_staff_tokens_are_relabelled_too(client, operator, create_shop):
    """A kiosk's token keeps its station on the list after a new label; a staff token's label replaces "POS
    sign-in"."""
    _, kiosk_raw = create_kiosk(station_id="0119", actor_label="test")
    commit_unit_of_work()
    shop = create_shop()
    staff_raw = client.post("/api/v1/staff/token", json={"email": shop.cashier.email,
                                                         "password": SHOP_PASSWORD}).get_json()["token"]
    for raw, label in ((kiosk_raw, "Hall B screen"), (staff_raw, "Till 3 tablet")):
        assert client.post(f"{PAGE}{stored(raw).id}/label", data={"label": label}).status_code == 302
    kiosks = client.get(PAGE, query_string={"kind": "kiosk", "q": "0119"}).get_data(as_text=True)
    assert "(0119)" in kiosks and "Hall B screen" in kiosks
    staff = client.get(PAGE, query_string={"kind": "staff"}).get_data(as_text=True)
    assert "Till 3 tablet" in staff and "POS sign-in" not in staff and shop.cashier.email in staff
    assert len(audits("token.label")) == 2


@pytest.mark.parametrize("label", ["", "   ", "x" * (MAX_TOKEN_LABEL + 1), "line\nbreak", "tab\there", "esc\x1b[31m",
                                   "nul\x00", "a\u2028b"])
def test_a_bad_label_is_a_message_on_the_form(client, operator, create_partner, label):
    """Empty, longer than the column, or with control characters: 422 with the rule's message beside the field;
    nothing changes and nothing is audited."""
    _, raw = create_partner(name="Shengjing Bus")
    reply = client.post(f"{PAGE}{stored(raw).id}/label", data={"label": label})
    assert reply.status_code == 422
    html = reply.get_data(as_text=True)
    messages = ("Give the token a label.", f"The label has at most {MAX_TOKEN_LABEL} characters.",
                "The label may not contain control characters such as line breaks or tabs.")
    assert re.search(r'<p class="error">([^<]+)</p>', html).group(1) in messages
    assert stored(raw).label == "partner Shengjing Bus" and audits("token.label") == []


def test_a_rider_tokens_label_is_not_editable_and_only_operators_edit(client, create_rider, create_shop):
    """The label page of a rider token, or of no token, is 404; the operation refuses a rider token; a merchant
    owner may not open the page."""
    rider = create_rider()
    _, rider_token = issue_token(kind=TokenKind.rider, subject_id=rider.id, label="login")
    commit_unit_of_work()
    with pytest.raises(LabelNotEditable):
        set_token_label(token_id=rider_token.id, actor=None, label="phone")
    with pytest.raises(TokenLabelControlCharacters):
        set_token_label(token_id=rider_token.id, actor=None, label="a\rb")
    shop = create_shop()
    client.post("/login", data={"email": shop.owner.email, "password": SHOP_PASSWORD})
    assert client.get(f"{PAGE}{rider_token.id}/label").status_code == 403
    client.get("/logout")
    create_user(email="ops@metro.example", password=PASSWORD, role=Role.operator)
    commit_unit_of_work()
    client.post("/login", data={"email": "ops@metro.example", "password": PASSWORD})
    assert client.get(f"{PAGE}{rider_token.id}/label").status_code == 404
    assert client.post(f"{PAGE}99999/label", data={"label": "x"}).status_code == 404
    assert client.get(f"{PAGE}{10**30}/label").status_code == 404


def test_the_audit_actions_have_words_in_core():
    """Both token actions are labelled in core.templating beside the others."""
    assert str(AUDIT_ACTIONS["token.label"]) == "API token label changed"
    assert str(AUDIT_ACTIONS["token.revoke"]) == "API token revoked"


def test_the_command_line_lists_labels_and_revokes(runner, client, create_partner, create_shop):
    """`tokens list [--kind]` prints a page of each kind; `tokens label` and `tokens revoke` are the page's
    operations, audited as the command line; the revoked token's next request is refused; a refusal is exit 1 with
    its code."""
    _, raw = create_partner(name="Shengjing Bus")
    shop = create_shop()
    client.post("/api/v1/staff/token", json={"email": shop.cashier.email, "password": SHOP_PASSWORD})
    token = stored(raw)
    listed = runner.invoke(args=["tokens", "list", "--kind", "partner"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith(f"{token.id}\tpartner\tlive\tShengjing Bus\tpartner Shengjing Bus\t")
    assert shop.cashier.email not in listed.output
    assert shop.cashier.email in runner.invoke(args=["tokens", "list"]).output
    labelled = runner.invoke(args=["tokens", "label", str(token.id), "Gateway 2"])
    assert labelled.exit_code == 0 and stored(raw).label == "Gateway 2"
    assert runner.invoke(args=["tokens", "label", str(token.id), "a\tb"]).exit_code == 1
    revoked = runner.invoke(args=["tokens", "revoke", str(token.id), "--reason", "key leaked"])
    assert revoked.exit_code == 0, revoked.output
    assert (stored(raw).revoked_by, stored(raw).revoke_reason) == ("cli", "key leaked")
    assert [entry.actor_label for entry in audits("token.revoke")] == ["cli"]
    assert [entry.actor_label for entry in audits("token.label")] == ["cli"]
    assert client.post("/api/v1/trips", json={"trips": []}, headers=auth(raw)).status_code == 401
    again = runner.invoke(args=["tokens", "revoke", str(token.id), "--reason", "again"])
    assert again.exit_code == 1 and "token_revoked" in again.output
    assert "not_found" in runner.invoke(args=["tokens", "revoke", "99999", "--reason", "x"]).output
    assert runner.invoke(args=["tokens", "revoke", str(token.id)]).exit_code == 2  # --reason is required


def test_a_post_without_the_field_is_an_empty_label(client, operator, create_partner):
    """A form posted without `label` is the empty label's message, not the old label saved again."""
    _, raw = create_partner(name="Shengjing Bus")
    reply = client.post(f"{PAGE}{stored(raw).id}/label", data={})
    assert reply.status_code == 422 and "Give the token a label." in reply.get_data(as_text=True)
