"""The back office's mail page: what the platform sent or could not send (with the error), and under `make run` what
the local catcher received; operators only."""

from __future__ import annotations

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.models import MailStatus, OutgoingMail


def test_operators_see_sent_failed_and_caught_mail(app, operator, get_en, tmp_path):
    """Each mail with its recipient, subject and status; a failed one shows its error; caught messages are listed
    when a catcher folder is set."""
    db.session.add_all([
        OutgoingMail(to_address="a@shop.example", subject="Approved", body="b", kind="k", locale="en",
                     status=MailStatus.sent),
        OutgoingMail(to_address="b@shop.example", subject="Statement", body="b", kind="k", locale="en",
                     status=MailStatus.failed, last_error="ConnectionRefusedError: no relay"),
    ])
    commit_unit_of_work()
    (tmp_path / "1-1.eml").write_bytes(b"To: c@shop.example\r\nSubject: Caught one\r\n\r\nhello\r\n")
    app.config["MAIL_CATCHER_DIR"] = str(tmp_path)
    try:
        html = get_en("/backoffice/mail").get_data(as_text=True)
    finally:
        app.config["MAIL_CATCHER_DIR"] = None
    assert "a@shop.example" in html and "Sent" in html and "no relay" in html and "Failed" in html
    assert "Caught one" in html and "c@shop.example" in html


def test_the_mail_page_is_for_operators(client, create_shop):
    """A merchant's owner gets 403; a visitor the login page."""
    assert client.get("/backoffice/mail").status_code == 302
    shop = create_shop()
    client.post("/login", data={"email": shop.owner.email, "password": "password123"})
    assert client.get("/backoffice/mail").status_code == 403
