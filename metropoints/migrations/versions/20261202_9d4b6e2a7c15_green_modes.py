"""Green modes: trips of bus, bike and walking beside the metro, rule versions per mode, bus lines, trip reviews.

- trips: `mode` (metro, the default for every existing row, bus, bike, walk), `line` (bus), `steps` (walk) and
  `reason` (why a trip is not credited); new statuses `review` (held for an operator), `refused` (refused after
  review) and `duplicate` (the same physical trip, or a walking day, credited from another report). A partial
  index keeps the review queue.
- rule_versions: `mode` (existing versions are metro's), an optional per-mode cap `mode_cap` beside the daily cap
  across modes, walking's `steps_threshold`, `points_per_1000_steps_milli` and `mm_per_step`, and `factor_source`.
  Versions are unique per (mode, effective_from). Versions for bus, bike and walking are seeded, in force from the
  metro default's start (2010), with their factors' sources.
- bus_lines (code, name, average trip distance in metres: none for the city default), set by operators.
- trip_batches count the trips held for review.
- trip_reviews: an operator's decision about a trip held for review (who, when, credited or refused, why).

PostgreSQL: trips is partitioned; its columns and CHECKs are changed on the parent, which carries them to every
month. Constant defaults add the columns without rewriting a partition. SQLite: batch mode rebuilds trips and
rule_versions, so their guard triggers and trips' partial index are made again.

Revision ID: 9d4b6e2a7c15
Revises: 5c2e8b7d4f90
Create Date: 2026-12-02 15:00:00.000000

"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '9d4b6e2a7c15'
down_revision = '5c2e8b7d4f90'
branch_labels = None
depends_on = None

OLD_STATUSES = ('credited', 'capped', 'held')
STATUSES = (*OLD_STATUSES, 'review', 'refused', 'duplicate')
MODES = ('metro', 'bus', 'bike', 'walk')
TRIPS_GUARD = "trips are kept: the ledger and CO2e figures trace back to them"
RULES_GUARD = "rule versions are never changed; add a new version"
# Versions made before factor sources were recorded keep what their factor name says.
EARLIER_SOURCE = "recorded before factor sources were kept: see the factor name"

# The seeded versions of the new modes (numbers as in accrual.rules.MODE_DEFAULTS, which makes the same rows on an
# empty table). Each factor is the emissions a passenger-km of the mode avoids against the city's average
# motorised passenger-km (the baseline-minus-mode method of DB11/T 3043-2024).
SEEDS = (
    dict(mode='bus', points_per_km_milli=1000, daily_cap=60, mode_cap=None, co2e_mg_per_km=30_000,
         factor_name="Bus vs. city motorised baseline (platform default)",
         factor_source="Baseline-minus-mode method of Beijing DB11/T 3043-2024 (against the city's average motorised "
                       "passenger-km); 30 g/km is a provisional platform default, not a measured factor: operators "
                       "replace it with a sourced one as a new rule version",
         steps_threshold=0, points_per_1000_steps_milli=0,
         mm_per_step=0),
    dict(mode='bike', points_per_km_milli=1000, daily_cap=60, mode_cap=None, co2e_mg_per_km=75_000,
         factor_name="Shared bike vs. city motorised baseline (platform default)",
         factor_source="Baseline-minus-mode method of Beijing DB11/T 3043-2024 (a bike ride emits nothing in use); 75 "
                       "g/km is a provisional platform default, not a measured factor: operators replace it with a "
                       "sourced one as a new rule version",
         steps_threshold=0,
         points_per_1000_steps_milli=0, mm_per_step=0),
    dict(mode='walk', points_per_km_milli=0, daily_cap=60, mode_cap=10, co2e_mg_per_km=75_000,
         factor_name="Walking vs. city motorised baseline (platform default)",
         factor_source="Baseline-minus-mode method of Beijing DB11/T 3043-2024 (walking emits nothing in use); 75 "
                       "g/km as for cycling and 0.7 m a step are provisional platform defaults, not measured: "
                       "operators replace them with sourced ones as a new rule version",
         steps_threshold=3000, points_per_1000_steps_milli=1000,
         mm_per_step=700),
)


def _in(values: tuple[str, ...]) -> str:
    """An SQL list of string literals."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _sqlite_trips_again() -> None:
    """After a batch rebuild of trips on SQLite: its partial index and guard trigger."""
    op.execute("DROP INDEX IF EXISTS ix_trips_held_ref")
    op.execute("CREATE INDEX ix_trips_held_ref ON trips (source, rider_ref) WHERE status = 'held'")
    op.execute("DROP TRIGGER IF EXISTS trips_no_delete")
    op.execute(f"CREATE TRIGGER trips_no_delete BEFORE DELETE ON trips BEGIN SELECT RAISE(ABORT, '{TRIPS_GUARD}'); END")


def _sqlite_rules_again() -> None:
    """After a batch rebuild of rule_versions on SQLite: its guard triggers."""
    for action in ("UPDATE", "DELETE"):
        op.execute(f"DROP TRIGGER IF EXISTS rule_versions_no_{action.lower()}")
        op.execute(f"CREATE TRIGGER rule_versions_no_{action.lower()} BEFORE {action} ON rule_versions "
                   f"BEGIN SELECT RAISE(ABORT, '{RULES_GUARD}'); END")


def upgrade():
    # Trips.
    if _sqlite():
        with op.batch_alter_table('trips', schema=None) as batch_op:
            batch_op.add_column(sa.Column('mode', sa.String(length=24), server_default='metro', nullable=False))
            batch_op.add_column(sa.Column('line', sa.String(length=16), nullable=True))
            batch_op.add_column(sa.Column('steps', sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column('reason', sa.String(length=32), server_default='', nullable=False))
            batch_op.drop_constraint(batch_op.f('ck_trips_trip_status'), type_='check')
            batch_op.create_check_constraint('trip_status', f"status IN {_in(STATUSES)}")
            batch_op.create_check_constraint('trip_mode', f"mode IN {_in(MODES)}")
        _sqlite_trips_again()
    else:
        op.execute("ALTER TABLE trips ADD COLUMN mode varchar(24) NOT NULL DEFAULT 'metro', "
                   "ADD COLUMN line varchar(16), ADD COLUMN steps integer, "
                   "ADD COLUMN reason varchar(32) NOT NULL DEFAULT ''")
        # One statement, so the month partitions are read once to check both.
        op.execute(f"ALTER TABLE trips DROP CONSTRAINT ck_trips_trip_status, "
                   f"ADD CONSTRAINT ck_trips_trip_status CHECK (status IN {_in(STATUSES)}), "
                   f"ADD CONSTRAINT ck_trips_trip_mode CHECK (mode IN {_in(MODES)})")
    op.execute("CREATE INDEX ix_trips_review ON trips (service_day, id) WHERE status = 'review'")

    # Rule versions.
    with op.batch_alter_table('rule_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mode', sa.String(length=24), server_default='metro', nullable=False))
        batch_op.add_column(sa.Column('mode_cap', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('factor_source', sa.String(length=255), server_default=EARLIER_SOURCE,
                                      nullable=False))
        batch_op.add_column(sa.Column('steps_threshold', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('points_per_1000_steps_milli', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('mm_per_step', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint(batch_op.f('uq_rule_versions_effective_from'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_rule_versions_mode_effective_from'), ['mode', 'effective_from'])
        batch_op.create_check_constraint('rule_mode', f"mode IN {_in(MODES)}")
        batch_op.create_check_constraint('mode_cap_not_negative', "mode_cap IS NULL OR mode_cap >= 0")
        batch_op.create_check_constraint(
            'walk_rules_not_negative', "steps_threshold >= 0 AND points_per_1000_steps_milli >= 0 AND mm_per_step >= 0")
    # The existing rows took the note above; new ones name their source.
    with op.batch_alter_table('rule_versions', schema=None) as batch_op:
        batch_op.alter_column('factor_source', server_default='')
    if _sqlite():
        _sqlite_rules_again()
    rule_versions = sa.table(
        'rule_versions', *(sa.column(name) for name in (
            'mode', 'points_per_km_milli', 'daily_cap', 'mode_cap', 'co2e_mg_per_km', 'factor_name',
            'factor_source', 'steps_threshold', 'points_per_1000_steps_milli', 'mm_per_step')),
        sa.column('effective_from', sa.DateTime(timezone=True)), sa.column('created_at', sa.DateTime(timezone=True)),
        sa.column('created_by'), sa.column('note'))
    now = datetime.now(UTC)
    op.bulk_insert(rule_versions, [
        {**seed, "effective_from": datetime(2010, 1, 1, tzinfo=UTC), "created_at": now, "created_by": "default",
         "note": "default rules of the mode"} for seed in SEEDS])

    with op.batch_alter_table('trip_batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review', sa.Integer(), server_default='0', nullable=False))

    op.create_table('bus_lines',
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('avg_trip_m', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=120), nullable=False),
    sa.CheckConstraint('avg_trip_m IS NULL OR (avg_trip_m > 0 AND avg_trip_m <= 100000)',
                       name=op.f('ck_bus_lines_avg_trip_m_plausible')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_bus_lines'))
    )
    op.create_table('trip_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trip_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('service_day', sa.Date(), nullable=False),
    sa.Column('decision', sa.Enum('credited', 'refused', name='review_decision', native_enum=False,
                                  create_constraint=True, length=24), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_by', sa.String(length=120), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('length(reason) > 0', name=op.f('ck_trip_reviews_review_has_reason')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_trip_reviews_decided_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trip_reviews')),
    sa.UniqueConstraint('trip_pk', name=op.f('uq_trip_reviews_trip_pk'))
    )


def downgrade():
    op.drop_table('trip_reviews')
    op.drop_table('bus_lines')
    with op.batch_alter_table('trip_batches', schema=None) as batch_op:
        batch_op.drop_column('review')
    if _sqlite():  # the rebuild dropped its guard
        op.execute("DROP TRIGGER IF EXISTS trip_batches_no_delete")
        op.execute("CREATE TRIGGER trip_batches_no_delete BEFORE DELETE ON trip_batches "
                   "BEGIN SELECT RAISE(ABORT, 'trip batches are kept: trips and refusals name them'); END")
    # Trips of the new modes and statuses cannot go back into the old schema; refuse rather than lose them.
    bind = op.get_bind()
    left = bind.execute(sa.text(
        f"SELECT COUNT(*) FROM trips WHERE mode <> 'metro' OR status NOT IN {_in(OLD_STATUSES)}")).scalar()
    if left:
        raise RuntimeError(f"{left} trips of other modes or of review/refused/duplicate status: not downgrading")
    used = bind.execute(sa.text(
        "SELECT COUNT(*) FROM rule_versions WHERE mode <> 'metro' AND id IN (SELECT rule_version_id FROM trips)"
    )).scalar()
    if used:
        raise RuntimeError("rule versions of other modes are in use: not downgrading")
    if _sqlite():
        op.execute("DROP TRIGGER IF EXISTS rule_versions_no_delete")
        op.execute("DELETE FROM rule_versions WHERE mode <> 'metro'")
    else:
        op.execute("ALTER TABLE rule_versions DISABLE TRIGGER rule_versions_guard")
        op.execute("DELETE FROM rule_versions WHERE mode <> 'metro'")
        op.execute("ALTER TABLE rule_versions ENABLE TRIGGER rule_versions_guard")
    with op.batch_alter_table('rule_versions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_rule_versions_walk_rules_not_negative'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_rule_versions_mode_cap_not_negative'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_rule_versions_rule_mode'), type_='check')
        batch_op.drop_constraint(batch_op.f('uq_rule_versions_mode_effective_from'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_rule_versions_effective_from'), ['effective_from'])
        for column in ('mm_per_step', 'points_per_1000_steps_milli', 'steps_threshold', 'factor_source', 'mode_cap',
                       'mode'):
            batch_op.drop_column(column)
    if _sqlite():
        _sqlite_rules_again()

    op.execute("DROP INDEX IF EXISTS ix_trips_review")
    if _sqlite():
        with op.batch_alter_table('trips', schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f('ck_trips_trip_mode'), type_='check')
            batch_op.drop_constraint(batch_op.f('ck_trips_trip_status'), type_='check')
            batch_op.create_check_constraint('trip_status', f"status IN {_in(OLD_STATUSES)}")
            for column in ('reason', 'steps', 'line', 'mode'):
                batch_op.drop_column(column)
        _sqlite_trips_again()
    else:
        op.execute(f"ALTER TABLE trips DROP CONSTRAINT ck_trips_trip_mode, DROP CONSTRAINT ck_trips_trip_status, "
                   f"ADD CONSTRAINT ck_trips_trip_status CHECK (status IN {_in(OLD_STATUSES)})")
        op.execute("ALTER TABLE trips DROP COLUMN reason, DROP COLUMN steps, DROP COLUMN line, DROP COLUMN mode")
