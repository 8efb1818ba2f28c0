"""Carbon export changes: `carbon_export_pending` names each trip of an exported month whose status, km, grams or
points changed after the export (a trip credited after review or on linking, refused, found a duplicate), so the
next export of any month writes its line (its first `trip` line or the `adjustment` of the difference) without
reading the months already exported. A trigger on `trips` fills it, whatever changed the trip.

Revision ID: f3a9c1d7e254
Revises: c4f8e2b6a913
Create Date: 2026-12-02 19:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f3a9c1d7e254'
down_revision = 'c4f8e2b6a913'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
CHANGED = ("OLD.status IS NOT NEW.status OR OLD.distance_m IS NOT NEW.distance_m OR "
           "OLD.co2e_grams IS NOT NEW.co2e_grams OR OLD.points IS NOT NEW.points")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    op.create_table('carbon_export_pending',
    sa.Column('trip_pk', BigId, nullable=False),
    sa.Column('service_day', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('trip_pk', name=op.f('pk_carbon_export_pending'))
    )
    if _sqlite():
        op.execute(
            "CREATE TRIGGER trips_carbon_export_pending AFTER UPDATE ON trips FOR EACH ROW "
            f"WHEN ({CHANGED}) AND EXISTS (SELECT 1 FROM carbon_exports e "
            "WHERE e.period = strftime('%Y-%m-01', NEW.service_day)) "
            "BEGIN INSERT OR IGNORE INTO carbon_export_pending (trip_pk, service_day) "
            "VALUES (NEW.id, NEW.service_day); END")
    else:
        op.execute(
            "CREATE FUNCTION trips_carbon_export_pending() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF EXISTS (SELECT 1 FROM carbon_exports e "
            "WHERE e.period = CAST(date_trunc('month', NEW.service_day) AS date)) THEN "
            "INSERT INTO carbon_export_pending (trip_pk, service_day) VALUES (NEW.id, NEW.service_day) "
            "ON CONFLICT DO NOTHING; END IF; RETURN NULL; END $$")
        # On the partitioned table: every partition, those made later included, gets the trigger.
        op.execute("CREATE TRIGGER trips_carbon_export_pending AFTER UPDATE ON trips FOR EACH ROW "
                   f"WHEN ({CHANGED.replace('IS NOT', 'IS DISTINCT FROM')}) "
                   "EXECUTE FUNCTION trips_carbon_export_pending()")


def downgrade():
    if _sqlite():
        op.execute("DROP TRIGGER trips_carbon_export_pending")
    else:
        op.execute("DROP TRIGGER trips_carbon_export_pending ON trips")
        op.execute("DROP FUNCTION trips_carbon_export_pending()")
    op.drop_table('carbon_export_pending')
