"""Background jobs on rq: queued during a unit of work, handed over only after its commit, or run inline without Redis.

Queued after the commit because a worker that starts before the commit would not find the rows it was given.
Jobs take ids, reload their rows and check state, so running one twice changes nothing the second time.
rq's default serializer is kept because `rq cron` enqueues with it; `enqueue` refuses any argument that is not
a plain JSON value, so nothing but ids and strings ever crosses the queue.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue, Retry, Worker, get_current_job

from metropoints.core.db import commit_unit_of_work, db, on_unit_of_work_end, rollback_unit_of_work

log = logging.getLogger(__name__)

# Queue names, defined once. `ingest` carries trip files, `scheduled` what `rq cron` starts.
QUEUE_NAMES = ("ingest", "default", "scheduled")


@dataclass(frozen=True)
class PendingJob:
    """A job queued during a unit of work and not yet handed over."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    queue: str
    timeout: int | None
    retries: int
    backoff: tuple[int, ...]


def queue_name(name: str, prefix: str | None = None) -> str:
    """The Redis-side name of one of QUEUE_NAMES, with this deployment's prefix."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return f"{prefix or current_app.config['QUEUE_PREFIX']}-{name}"


def redis_connection() -> Redis | None:
    """The app's Redis connection, or None when REDIS_URL is unset (jobs run inline)."""
    url = current_app.config.get("REDIS_URL")
    if not url:
        return None
    ext = current_app.extensions.setdefault("metropoints_redis", {})
    if url not in ext:
        ext[url] = Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
    return ext[url]


def get_queue(name: str) -> Queue:
    """The rq queue for one of QUEUE_NAMES; needs REDIS_URL."""
    connection = redis_connection()
    if connection is None:
        raise RuntimeError("REDIS_URL is not set: jobs run inline")
    return Queue(queue_name(name), connection=connection, default_timeout=current_app.config["JOB_TIMEOUT_SECONDS"])


DEFAULT_BACKOFF = (5, 30, 120)


def enqueue(func: Callable[..., Any], *args: Any, queue: str = "default", timeout: int | None = None,
            retries: int = 0, backoff: tuple[int, ...] = DEFAULT_BACKOFF) -> None:
    """Queue `func(*args)` to run after the current unit of work commits. `retries` only for idempotent jobs;
    `backoff` gives the seconds before each retry (the last repeats)."""
    json.dumps(args)  # raises TypeError for anything but plain JSON values
    if queue not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r}")
    pending = PendingJob(func, args, queue, timeout, retries, tuple(backoff))
    db.session.info.setdefault("pending_jobs", []).append(pending)


def discard_pending() -> None:
    """Forget the jobs of a unit of work that was rolled back."""
    db.session.info.pop("pending_jobs", None)


def dispatch_after_commit() -> None:
    """Hand the committed unit of work's jobs to rq, or run them now, one unit of work each, without Redis."""
    pending: list[PendingJob] = db.session.info.pop("pending_jobs", [])
    if not pending:
        return
    if redis_connection() is None:
        for item in pending:
            item.func(*item.args)
        return
    for item in pending:
        retry = Retry(max=item.retries, interval=list(item.backoff[: item.retries]) or 0) if item.retries else None
        get_queue(item.queue).enqueue(item.func, *item.args, job_timeout=item.timeout, retry=retry)


on_unit_of_work_end(commit=dispatch_after_commit, rollback=discard_pending)


def job(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make `func` a job: one unit of work (commit on success, rollback on error), logged with the rq job id."""

    @functools.wraps(func)
    def run(*args: Any) -> Any:
        current = get_current_job()
        job_id = current.id if current else "inline"
        log.info("job %s: %s%r starts", job_id, func.__name__, args)
        try:
            result = func(*args)
            commit_unit_of_work()
        except Exception:
            rollback_unit_of_work()
            log.exception("job %s: %s failed", job_id, func.__name__)
            raise
        log.info("job %s: %s done", job_id, func.__name__)
        return result

    return run


class AppWorker(Worker):
    """An rq worker whose forked work horse opens its own database connections and closes its session after a job."""

    def perform_job(self, job, queue) -> bool:  # type: ignore[override]
        """Run one job with fresh connections (the parent's must not be shared across a fork)."""
        db.engine.dispose(close=False)
        try:
            return super().perform_job(job, queue)
        finally:
            db.session.remove()
