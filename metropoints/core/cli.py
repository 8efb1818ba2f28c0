"""Core commands: operator accounts and the rq worker; a decorator that turns domain errors into CLI errors."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from metropoints.core.db import commit_unit_of_work, rollback_unit_of_work
from metropoints.core.errors import DomainError
from metropoints.core.jobs import QUEUE_NAMES, AppWorker, get_queue, redis_connection
from metropoints.core.models import Role
from metropoints.core.operations import create_user, record_audit

operators_cli = AppGroup("operators", help="Accounts of the metro business team.")


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
    app.cli.add_command(worker)
