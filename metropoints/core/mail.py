"""E-mail: rendered in the recipient's language when queued, sent after the commit by an rq job through Flask-Mail.

A mail is a row of `outgoing_mail` (what went out, or failed, stays visible to operators) and a job that takes its id,
so a mail is queued in the same unit of work as the change it tells about and never sent for a change rolled back.
The job is retried with backoff by rq; without Redis it runs inline after the commit, and an SMTP server that does not
answer then marks the mail failed instead of failing the request that queued it.

Templates are `templates/<package>/mail/<name>.txt`: the first line is the subject, the rest the plain-text body.
Settings are Flask-Mail's (MAIL_SERVER, MAIL_PORT, MAIL_USE_TLS, MAIL_USE_SSL, MAIL_USERNAME, MAIL_PASSWORD,
MAIL_DEFAULT_SENDER; FLASK_MAIL_* in the environment), read at each send, and PUBLIC_URL for the links mails carry.
"""

from __future__ import annotations

import email
import email.policy
import logging
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import current_app, render_template, url_for
from flask_babel import force_locale
from flask_mail import Connection, Message
from rq import get_current_job
from sqlalchemy import select

from metropoints.core.db import commit_unit_of_work, db
from metropoints.core.extensions import mail
from metropoints.core.jobs import enqueue
from metropoints.core.models import MailStatus, OutgoingMail, User
from metropoints.core.timeutil import utcnow

log = logging.getLogger(__name__)

MAIL_BACKOFF = (30, 120, 600, 1800)  # seconds before each retry: a relay down for up to ~40 minutes loses nothing
LOCALES = ("zh", "en")


def public_link(endpoint: str, **values: Any) -> str:
    """An absolute link to a page, for a mail (which may be queued by a job or a command, outside any request)."""
    with current_app.test_request_context(base_url=current_app.config["PUBLIC_URL"]):
        return url_for(endpoint, _external=True, **values)


def render_mail(template: str, locale: str, **context: Any) -> tuple[str, str]:
    """(subject, body) of a mail template in a language."""
    with force_locale(locale if locale in LOCALES else "zh"):
        text = render_template(template, **context)
    subject, _, body = text.strip().partition("\n")
    return subject.strip()[:255], body.strip() + "\n"


def queue_mail(*, to: str, locale: str, kind: str, template: str, **context: Any) -> OutgoingMail:
    """Render a mail in the recipient's language and queue it to be sent after this unit of work commits."""
    subject, body = render_mail(template, locale, **context)
    record = OutgoingMail(to_address=to, subject=subject, body=body, kind=kind, locale=locale,
                          status=MailStatus.queued)
    db.session.add(record)
    db.session.flush()
    enqueue(send_mail_job, record.id, retries=len(MAIL_BACKOFF), backoff=MAIL_BACKOFF)
    return record


def mail_user(user: User, *, kind: str, template: str, **context: Any) -> OutgoingMail:
    """Queue a mail to a portal account, in the account's language."""
    return queue_mail(to=user.email, locale=user.locale or "zh", kind=kind, template=template, user=user, **context)


def send_mail_job(mail_id: int) -> str:
    """Send one queued mail (a mail already sent or given up is left alone, so a repeat sends nothing twice)."""
    record = db.session.scalar(select(OutgoingMail).where(OutgoingMail.id == mail_id).with_for_update())
    if record is None or record.status != MailStatus.queued:
        db.session.rollback()
        return record.status.value if record else "missing"
    record.attempts += 1
    message = Message(subject=record.subject, recipients=[record.to_address], body=record.body,
                      sender=current_app.config["MAIL_DEFAULT_SENDER"])
    try:
        # The settings as they are now (Mail.send would use those read when the app was made).
        with Connection(mail.init_mail(current_app.config, current_app.debug, current_app.testing)) as connection:
            connection.send(message)
    except (smtplib.SMTPException, OSError) as error:
        current = get_current_job()
        record.last_error = f"{type(error).__name__}: {error}"[:1000]
        if current is None or not current.retries_left:
            record.status = MailStatus.failed
        commit_unit_of_work()
        log.warning("mail %s to %s: %s (%s)", mail_id, record.to_address, record.last_error,
                    "will retry" if record.status == MailStatus.queued else "gave up")
        if record.status == MailStatus.queued:
            raise
        return record.status.value
    record.status, record.sent_at, record.last_error = MailStatus.sent, utcnow(), ""
    commit_unit_of_work()
    return record.status.value


def recent_mail(limit: int = 100) -> list[OutgoingMail]:
    """The newest mails, for the operators' page (bounded: the latest `limit` only)."""
    return list(db.session.scalars(select(OutgoingMail).order_by(OutgoingMail.id.desc()).limit(limit)))


@dataclass(frozen=True)
class CaughtMail:
    """A message the development mail catcher received."""

    received_at: datetime
    to: str
    subject: str
    body: str


def caught_mail(folder: str, limit: int = 50) -> list[CaughtMail]:
    """The newest messages the development catcher kept in `folder` (`make run`), newest first."""
    path = Path(folder)
    if not path.is_dir():
        return []
    files = sorted(path.glob("*.eml"), reverse=True)[:limit]
    found = []
    for file in files:
        message = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        found.append(CaughtMail(received_at=datetime.fromtimestamp(file.stat().st_mtime, UTC),
                                to=str(message["To"] or ""), subject=str(message["Subject"] or ""),
                                body=body.get_content() if body is not None else ""))
    return found
