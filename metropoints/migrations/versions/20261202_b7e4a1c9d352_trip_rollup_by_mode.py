"""The trips' rollup per mode: `rollup_trip_days` gains `mode` in its key (service day, mode, rule version), rebuilt
from the trips, so the KPI page, the kiosks' city figures and a rider's carbon account split by mode without reading
the trips.

The rows are recomputed from the trips as `flask reports rebuild` does (frozen here): the table is locked by the
ALTER for the rest of the migration's transaction, so no writer adds to it meanwhile.

Revision ID: b7e4a1c9d352
Revises: 9d4b6e2a7c15
Create Date: 2026-12-02 16:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b7e4a1c9d352'
down_revision = '9d4b6e2a7c15'
branch_labels = None
depends_on = None

MODES = "('metro', 'bus', 'bike', 'walk')"
COUNTED = "('credited', 'capped')"
COUNTERS = "COUNT(*), SUM(distance_m), SUM(points), SUM(co2e_grams)"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    if _sqlite():
        with op.batch_alter_table('rollup_trip_days', schema=None) as batch_op:
            batch_op.add_column(sa.Column('mode', sa.String(length=24), server_default='metro', nullable=False))
            batch_op.drop_constraint('pk_rollup_trip_days', type_='primary')
            batch_op.create_primary_key('pk_rollup_trip_days', ['service_day', 'mode', 'rule_version_id'])
            batch_op.create_check_constraint('rollup_trip_mode', f"mode IN {MODES}")
    else:
        op.execute("ALTER TABLE rollup_trip_days ADD COLUMN mode varchar(24) NOT NULL DEFAULT 'metro', "
                   "DROP CONSTRAINT pk_rollup_trip_days, "
                   "ADD CONSTRAINT pk_rollup_trip_days PRIMARY KEY (service_day, mode, rule_version_id), "
                   f"ADD CONSTRAINT ck_rollup_trip_days_rollup_trip_mode CHECK (mode IN {MODES})")
    op.execute("DELETE FROM rollup_trip_days")
    op.execute("INSERT INTO rollup_trip_days (service_day, mode, rule_version_id, trips, metres, points, co2e_grams) "
               f"SELECT service_day, mode, rule_version_id, {COUNTERS} FROM trips WHERE status IN {COUNTED} "
               "GROUP BY service_day, mode, rule_version_id")


def downgrade():
    op.execute("DELETE FROM rollup_trip_days")
    if _sqlite():
        with op.batch_alter_table('rollup_trip_days', schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f('ck_rollup_trip_days_rollup_trip_mode'), type_='check')
            batch_op.drop_constraint('pk_rollup_trip_days', type_='primary')
            batch_op.create_primary_key('pk_rollup_trip_days', ['service_day', 'rule_version_id'])
            batch_op.drop_column('mode')
    else:
        op.execute("ALTER TABLE rollup_trip_days DROP CONSTRAINT pk_rollup_trip_days, "
                   "DROP CONSTRAINT ck_rollup_trip_days_rollup_trip_mode, DROP COLUMN mode, "
                   "ADD CONSTRAINT pk_rollup_trip_days PRIMARY KEY (service_day, rule_version_id)")
    op.execute("INSERT INTO rollup_trip_days (service_day, rule_version_id, trips, metres, points, co2e_grams) "
               f"SELECT service_day, rule_version_id, {COUNTERS} FROM trips WHERE status IN {COUNTED} "
               "GROUP BY service_day, rule_version_id")
