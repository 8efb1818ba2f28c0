"""The ledger's primary key becomes (rider_id, id, earned_on) and takes over ix_ledger_rider (rider_id, id): one
index fewer to write for every ledger entry, a trip's credit included.

Nothing reads an entry by its id alone: the ledger is read per rider, newest first by id (the rider's page, the
balance check), and ids come from one sequence, so (rider_id, id, earned_on) is as unique as (id, earned_on) was.
PostgreSQL only: on SQLite the ledger is a plain table with its id as primary key and keeps ix_ledger_rider.

Revision ID: 5f1d3a7c9e24
Revises: f3a9c1d7e254
Create Date: 2026-12-02 19:00:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '5f1d3a7c9e24'
down_revision = 'f3a9c1d7e254'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE ledger_entries DROP CONSTRAINT pk_ledger_entries")
    op.execute("ALTER TABLE ledger_entries ADD CONSTRAINT pk_ledger_entries PRIMARY KEY (rider_id, id, earned_on)")
    op.execute("DROP INDEX ix_ledger_rider")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX ix_ledger_rider ON ledger_entries (rider_id, id)")
    op.execute("ALTER TABLE ledger_entries DROP CONSTRAINT pk_ledger_entries")
    op.execute("ALTER TABLE ledger_entries ADD CONSTRAINT pk_ledger_entries PRIMARY KEY (id, earned_on)")
