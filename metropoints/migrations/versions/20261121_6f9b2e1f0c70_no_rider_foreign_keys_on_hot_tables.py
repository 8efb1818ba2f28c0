"""No per-row foreign key to riders on trips and ledger_entries; riders can no longer be deleted.

The two rider checks were a quarter of the time of the statement that credits a batch. A rider who leaves is
anonymised, not deleted: their ledger and trips stay, as the books require. rider_links keeps its foreign key.

Revision ID: 6f9b2e1f0c70
Revises: 6f807257153d
Create Date: 2026-11-21 11:40:05.101394

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '6f9b2e1f0c70'
down_revision = '6f807257153d'
branch_labels = None
depends_on = None

WHY = "riders are anonymised, never deleted: their ledger and trips stay"
LEDGER_MESSAGE = "ledger_entries is append-only: post a correcting entry instead"


def upgrade():
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_ledger_entries_rider_id_riders'), type_='foreignkey')
    with op.batch_alter_table('trips', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_trips_rider_id_riders'), type_='foreignkey')
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's batch mode rebuilt the tables, and dropped their triggers with them.
        for action in ("UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS ledger_entries_no_{action.lower()}")
            op.execute(f"CREATE TRIGGER ledger_entries_no_{action.lower()} BEFORE {action} ON ledger_entries "
                       f"BEGIN SELECT RAISE(ABORT, '{LEDGER_MESSAGE}'); END")
        op.execute("DROP TRIGGER IF EXISTS trips_no_delete")
        op.execute("CREATE TRIGGER trips_no_delete BEFORE DELETE ON trips "
                   "BEGIN SELECT RAISE(ABORT, 'trips are kept: the ledger and CO2e figures trace back to them'); END")
        op.execute(f"CREATE TRIGGER riders_no_delete BEFORE DELETE ON riders BEGIN SELECT RAISE(ABORT, '{WHY}'); END")
        return
    op.execute(f"CREATE FUNCTION riders_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{WHY}'; END $$")
    op.execute("CREATE TRIGGER riders_guard BEFORE DELETE ON riders FOR EACH ROW EXECUTE FUNCTION riders_guard()")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS riders_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS riders_guard ON riders")
        op.execute("DROP FUNCTION IF EXISTS riders_guard()")
    with op.batch_alter_table('trips', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_trips_rider_id_riders'), 'riders', ['rider_id'], ['id'])
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_ledger_entries_rider_id_riders'), 'riders', ['rider_id'], ['id'])
