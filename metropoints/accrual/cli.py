"""Operator commands for accrual: partners, trip files, rule versions, points, the network."""

from __future__ import annotations

import csv
import time
from datetime import datetime

import click
from flask.cli import AppGroup
from sqlalchemy import select

from metropoints.accrual import buslines, jobs, ledger, operations, review, rules
from metropoints.accrual.models import (
    BatchStatus,
    ReviewDecision,
    RuleVersion,
    TripBatch,
    TripBatchChunk,
    TripMode,
    TripRejection,
)
from metropoints.accrual.network import sync_stations
from metropoints.core.cli import fail_on_domain_error
from metropoints.core.db import MAX_ID, commit_unit_of_work, db
from metropoints.core.jobs import redis_connection
from metropoints.core.timeutil import service_day, utcnow

partners_cli = AppGroup("partners", help="Trip-feed partners.")
trips_cli = AppGroup("trips", help="The trip feed.")
rules_cli = AppGroup("rules", help="Accrual rule versions.")
points_cli = AppGroup("points", help="The points ledger.")
network_cli = AppGroup("network", help="The metro network.")
buslines_cli = AppGroup("buslines", help="Bus lines the trip feed may name.")


@partners_cli.command("create")
@click.argument("name")
@fail_on_domain_error
def create_partner(name: str) -> None:
    """Create a partner and print its token (shown this once only)."""
    partner, token = operations.create_partner(name=name, actor_label="cli")
    commit_unit_of_work()
    click.echo(f"partner {partner.name} (id {partner.id}); its token, shown once:")
    click.echo(token)


def _progress_line(batch: TripBatch) -> str:
    """One line of counts for a batch."""
    return (f"{batch.rows_done}/{batch.rows_total} rows: credited {batch.credited}, capped {batch.capped}, "
            f"duplicates {batch.duplicates}, held {batch.held}, rejected {batch.rejected}"
            + (f", review {batch.review}" if batch.review else ""))


@trips_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--partner", "partner_name", required=True, help="The partner the file comes from.")
@click.option("--chunk-rows", type=click.IntRange(100, 200_000), default=None, help="Rows per job.")
@click.option("--rejected-out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the refused rows, with their reasons, to this CSV.")
@click.option("--no-wait", is_flag=True, help="With Redis: queue the jobs and return at once.")
@fail_on_domain_error
def import_trips(path: str, partner_name: str, chunk_rows: int | None, rejected_out: str | None,
                 no_wait: bool) -> None:
    """Load a trip file (the feed's columns as its header): rq jobs with Redis, inline without; shows progress."""
    partner = operations.get_partner(partner_name)
    inline = redis_connection() is None
    with open(path, newline="", encoding="utf-8-sig") as stream:
        batch = jobs.start_file_import(partner=partner, filename=path, rows=operations.read_trip_csv(stream),
                                       chunk_rows=chunk_rows, enqueue_chunks=not inline)
        batch_id = batch.id
        chunk_ids = [c.id for c in batch_chunks(batch_id)]
        commit_unit_of_work()
    click.echo(f"batch {batch_id}: {len(chunk_ids)} chunk(s) of {batch.rows_total} rows "
               f"{'processed here' if inline else 'queued for the rq workers'}", err=True)
    if inline:
        for chunk_id in chunk_ids:
            operations.process_chunk(chunk_id)
            commit_unit_of_work()
            click.echo(_progress_line(db.session.get(TripBatch, batch_id)), err=True)
    elif not no_wait:
        _wait_for(batch_id)
    batch = db.session.get(TripBatch, batch_id)
    db.session.refresh(batch)
    if rejected_out:
        _write_rejections(batch_id, rejected_out)
    click.echo(f"batch {batch_id} {batch.status.value}: credited {batch.credited}, capped {batch.capped}, "
               f"duplicates {batch.duplicates}, held {batch.held}, rejected {batch.rejected}"
               + (f", review {batch.review}" if batch.review else ""))


def batch_chunks(batch_id: int):
    """The chunks of a batch, in order."""
    return db.session.scalars(select(TripBatchChunk).where(TripBatchChunk.batch_id == batch_id)
                              .order_by(TripBatchChunk.chunk_no)).all()


def _wait_for(batch_id: int, poll_seconds: float = 1.0) -> None:
    """Print the batch's progress until every chunk is done (the workers do the work)."""
    last = ""
    while True:
        db.session.rollback()  # a fresh snapshot each poll
        batch = db.session.get(TripBatch, batch_id)
        db.session.refresh(batch)
        line = _progress_line(batch)
        if line != last:
            click.echo(line, err=True)
            last = line
        if batch.status != BatchStatus.processing:
            return
        time.sleep(poll_seconds)


def _write_rejections(batch_id: int, path: str) -> None:
    """The refused rows of a batch as CSV: line, trip_id, reason, detail, the row as it came."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "trip_id", "reason", "detail", "row"])
        for r in db.session.scalars(select(TripRejection).where(TripRejection.batch_id == batch_id)
                                    .order_by(TripRejection.line_no)):
            writer.writerow([r.line_no, r.trip_id, r.reason, r.detail, r.row_json])


review_cli = AppGroup("review", help="Trips held for an operator's review.")
trips_cli.add_command(review_cli)


@review_cli.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="How many to list.")
def list_reviews(limit: int) -> None:
    """The trips waiting for review, oldest service day first, with why each is held."""
    waiting = review.review_queue(limit=limit)
    for trip in waiting:
        click.echo(f"trip {trip.id}  {trip.service_day}  {trip.mode.value:<5}  {trip.source}:{trip.trip_id}  "
                   f"rider {trip.rider_id}  {trip.reason}")
    click.echo(f"{len(waiting)} of {review.count_under_review()} trip(s) under review")


@review_cli.command("decide")
@click.argument("trip_pk", type=click.IntRange(1, MAX_ID))
@click.option("--credit", "decision", flag_value=ReviewDecision.credited.value, help="Credit it under its day's caps.")
@click.option("--refuse", "decision", flag_value=ReviewDecision.refused.value, help="Refuse it: no points.")
@click.option("--reason", required=True, help="Why; kept with the decision and audited.")
@click.option("--by", "actor", default="cli", help="Who decided.")
@fail_on_domain_error
def decide(trip_pk: int, decision: str | None, reason: str, actor: str) -> None:
    """Credit or refuse a trip held for review (as the back office's review queue does)."""
    if decision is None:
        raise click.UsageError("Give --credit or --refuse.")
    done = review.decide_review(trip_pk=trip_pk, decision=decision, reason=reason, actor=None,
                                actor_label=f"cli:{actor}")
    commit_unit_of_work()
    click.echo(f"trip {trip_pk} {done.decision.value}: {done.points} point(s)")


@trips_cli.command("sweep-held")
def sweep_held() -> None:
    """Credit held trips whose reference has been linked since they arrived (also scheduled)."""
    count = operations.sweep_held_trips()
    commit_unit_of_work()
    click.echo(f"credited {count} held trip(s)")


@rules_cli.command("list")
@click.option("--mode", type=click.Choice([m.value for m in TripMode]), default=None, help="One mode only.")
def list_rules(mode: str | None) -> None:
    """Every rule version, oldest first (metro's, then each other mode's)."""
    query = select(RuleVersion).order_by(RuleVersion.effective_from, RuleVersion.id)
    if mode:
        query = query.where(RuleVersion.mode == mode)
    versions = sorted(db.session.scalars(query), key=lambda v: list(TripMode).index(TripMode(v.mode)))
    for version in versions:
        click.echo(rules.describe(version))


@rules_cli.command("set")
@click.option("--mode", type=click.Choice([m.value for m in TripMode]), default="metro", show_default=True,
              help="The mode the version is for.")
@click.option("--points-per-km", default=None, help="Points per km (up to 3 decimals); not for walking.")
@click.option("--daily-cap", type=int, required=True, help="Points per rider and service day at most, all modes.")
@click.option("--mode-cap", type=int, default=None, help="Points per rider and service day at most in this mode.")
@click.option("--co2e-factor", required=True, help="Grams CO2e saved per passenger-km (up to 3 decimals).")
@click.option("--factor-name", required=True, help="What the CO2e factor is.")
@click.option("--factor-source", default="", help="Where the CO2e factor comes from (publication, table, year).")
@click.option("--steps-threshold", type=int, default=0, help="Walking: steps a day that earn nothing.")
@click.option("--points-per-1000-steps", default="0", help="Walking: points per 1,000 steps above the threshold.")
@click.option("--metres-per-step", default="0", help="Walking: a step's length in metres (km and CO2e).")
@click.option("--effective-from", default=None, help="ISO 8601 time with offset; default now. Never in the past.")
@click.option("--note", default="", help="Why the rules change.")
@fail_on_domain_error
def set_rules(mode: str, points_per_km: str | None, daily_cap: int, mode_cap: int | None, co2e_factor: str,
              factor_name: str, factor_source: str, steps_threshold: int, points_per_1000_steps: str,
              metres_per_step: str, effective_from: str | None, note: str) -> None:
    """Add a rule version of a mode; trips already credited keep the version they were computed with."""
    start = None
    if effective_from:
        try:
            start = datetime.fromisoformat(effective_from)
        except ValueError:
            raise click.BadParameter("use ISO 8601 with an offset", param_hint="--effective-from") from None
    if points_per_km is None and mode != TripMode.walk.value:
        raise click.BadParameter("required for this mode", param_hint="--points-per-km")
    version = rules.create_rule_version(
        mode=mode, points_per_km=points_per_km or 0, daily_cap=daily_cap, mode_cap=mode_cap,
        co2e_factor_g_per_km=co2e_factor, factor_name=factor_name, factor_source=factor_source,
        steps_threshold=steps_threshold, points_per_1000_steps=points_per_1000_steps,
        metres_per_step=metres_per_step, effective_from=start, actor_label="cli", note=note)
    commit_unit_of_work()
    click.echo(f"rule version {rules.describe(version)}")


@buslines_cli.command("set")
@click.argument("code")
@click.option("--name", default="", help="The line's name as riders know it.")
@click.option("--avg-trip-m", type=int, default=None,
              help="Average trip distance in metres, for bus trips without distance_m (default: the city's).")
@fail_on_domain_error
def set_bus_line(code: str, name: str, avg_trip_m: int | None) -> None:
    """Add a bus line, or change its name and average trip distance (audited as `cli`)."""
    line = buslines.set_bus_line(code=code, name=name, avg_trip_m=avg_trip_m, actor=None, actor_label="cli")
    commit_unit_of_work()
    click.echo(f"bus line {line.code}: {_bus_line_distance(line.avg_trip_m)}")


def _bus_line_distance(metres: int | None) -> str:
    """A line's average trip distance for the operator."""
    return f"{metres} m a trip on average" if metres else "the city's default trip distance"


@buslines_cli.command("list")
def list_bus_lines() -> None:
    """Every bus line, by code."""
    lines = buslines.bus_lines()
    for line in lines:
        click.echo(f"{line.code}\t{line.name}\t{_bus_line_distance(line.avg_trip_m)}")
    click.echo(f"{len(lines)} bus line(s)")


@points_cli.command("expire")
@click.option("--year", type=int, default=None, help="The year that ended (default: last year).")
@fail_on_domain_error
def expire(year: int | None) -> None:
    """Expire the points earned two years back that are still unspent (idempotent)."""
    year = year or service_day(utcnow()).year - 1
    count = ledger.expire_points(year=year)
    commit_unit_of_work()
    click.echo(f"expired points of {count} rider(s) at the end of {year}")


@points_cli.command("adjust")
@click.argument("rider_id", type=int)
@click.option("--points", type=int, required=True, help="Positive to credit, negative to debit.")
@click.option("--reason", required=True, help="Why; kept in the ledger.")
@click.option("--by", "actor", default="cli", help="Who decided.")
@fail_on_domain_error
def adjust(rider_id: int, points: int, reason: str, actor: str) -> None:
    """An operator's adjustment, recorded as a new ledger entry with its reason."""
    entry = ledger.adjust_points(rider_id=rider_id, points=points, reason=reason, actor=actor)
    commit_unit_of_work()
    click.echo(f"ledger entry {entry.id}: {points:+d} for rider {rider_id}, balance {entry.balance_after}")


@network_cli.command("load")
def load_network() -> None:
    """Load (or refresh) the stations table from the packaged network data."""
    count = sync_stations()
    commit_unit_of_work()
    click.echo(f"{count} stations loaded")


def register(app) -> None:
    """Add the accrual command groups to the app."""
    for group in (partners_cli, trips_cli, rules_cli, points_cli, network_cli, buslines_cli):
        app.cli.add_command(group)
