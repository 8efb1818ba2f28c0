"""Core commands: operator accounts, API tokens (list, label, revoke) and the rq worker; a decorator that turns domain
errors into CLI errors."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from metropoints.core.db import MAX_ID, commit_unit_of_work, rollback_unit_of_work
from metropoints.core.errors import DomainError
from metropoints.core.jobs import QUEUE_NAMES, AppWorker, get_queue, redis_connection
from metropoints.core.models import Role, TokenKind
from metropoints.core.operations import create_user, record_audit, revoke_token, set_token_label
from metropoints.core.templating import local_datetime
from metropoints.core.timeutil import utcnow
from metropoints.core.token_queries import MAX_SEARCH, token_page

operators_cli = AppGroup("operators", help="Accounts of the metro business team.")
tokens_cli = AppGroup("tokens", help="Bearer tokens of partners, kiosks, the POS and riders.")
TOKEN_ID = click.IntRange(1, MAX_ID)


def fail_on_domain_error(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a rule's refusal as a CLI error (exit 1) after rolling the unit of work back."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DomainError as error:
            rollback_unit_of_work()
            raise click.ClickException(f"{error.code}: {error.message}") from None

    return run


@operators_cli.command("create")
@click.argument("email")
@click.option("--password", required=True, help="At least 8 characters.")
@fail_on_domain_error
def create_operator(email: str, password: str) -> None:
    """Create a metro business team account."""
    user = create_user(email=email, password=password, role=Role.operator)
    record_audit(actor=None, action="operator.create", subject=f"user:{user.id}")
    commit_unit_of_work()
    click.echo(f"operator {user.email} (id {user.id})")


@tokens_cli.command("list")
@click.option("--kind", "kinds", multiple=True, type=click.Choice([kind.value for kind in TokenKind]),
              help="Only this kind (repeatable); default every kind.")
@click.option("--search", default="", help="A partner's name, a station id, a staff e-mail or a rider's phone.")
@click.option("--before", type=TOKEN_ID, default=None, help="Older than this token id (the next page).")
def list_tokens(kinds: tuple[str, ...], search: str, before: int | None) -> None:
    """Tokens newest first, a page of each kind, as the back office lists them: id, kind, status, whose, label,
    made, expires, last used (Asia/Shanghai)."""
    now = utcnow()
    for kind in [TokenKind(value) for value in kinds] or list(TokenKind):
        rows, more = token_page(kind=kind, search=search[:MAX_SEARCH], before_id=before)
        for row in rows:
            click.echo("\t".join([str(row.id), row.kind.value, row.state(now), row.subject, row.label,
                                  local_datetime(row.created_at), local_datetime(row.expires_at) or "never",
                                  local_datetime(row.last_used_at) or "not yet"]))
        if more:
            click.echo(f"# more {kind.value} tokens: --kind {kind.value} --before {rows[-1].id}")


@tokens_cli.command("revoke")
@click.argument("token_id", type=TOKEN_ID)
@click.option("--reason", required=True, help="Why (written to the token and the audit log).")
@fail_on_domain_error
def revoke(token_id: int, reason: str) -> None:
    """Revoke a token: its next request is refused; audited as the command line."""
    token = revoke_token(token_id=token_id, actor=None, actor_label="cli", reason=reason)
    commit_unit_of_work()
    click.echo(f"token {token.id} ({token.kind.value}) revoked")


@tokens_cli.command("label")
@click.argument("token_id", type=TOKEN_ID)
@click.argument("label")
@fail_on_domain_error
def label(token_id: int, label: str) -> None:
    """Name a partner's, kiosk's or staff token (which device or key it is); audited as the command line."""
    token = set_token_label(token_id=token_id, actor=None, actor_label="cli", label=label)
    commit_unit_of_work()
    click.echo(f"token {token.id} ({token.kind.value}) labelled {token.label}")


@click.command("worker")
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run an rq worker on the given queues (default: all), with the job id in every log line."""
    connection = redis_connection()
    if connection is None:
        raise click.ClickException("REDIS_URL is not set: without Redis, jobs run inline and need no worker.")
    names = queues or QUEUE_NAMES
    unknown = [q for q in names if q not in QUEUE_NAMES]
    if unknown:
        raise click.ClickException(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUE_NAMES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = AppWorker([get_queue(q) for q in names], connection=connection)
    click.echo(f"worker on {', '.join(q.name for q in work.queues)} ({current_app.config['QUEUE_PREFIX']})")
    work.work(burst=burst)


def register(app) -> None:
    """Add the core commands to the app."""
    app.cli.add_command(operators_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(worker)
