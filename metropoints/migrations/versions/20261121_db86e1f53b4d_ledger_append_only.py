"""Make the points ledger append-only: an UPDATE or DELETE of an entry raises. Corrections are new entries.

Revision ID: db86e1f53b4d
Revises: d1c244bc28a2
Create Date: 2026-11-21 10:57:18.214031

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op

# revision identifiers, used by Alembic.
revision = 'db86e1f53b4d'
down_revision = 'd1c244bc28a2'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER ledger_entries_no_{action.lower()} BEFORE {action} ON ledger_entries
                BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only: post a correcting entry instead'); END""")
        return
    op.execute("""
        CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger_entries is append-only: post a correcting entry instead';
        END $$""")
    op.execute("""
        CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
        FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()""")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_delete")
        return
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries")
    op.execute("DROP FUNCTION IF EXISTS ledger_entries_append_only()")
