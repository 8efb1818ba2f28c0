"""The points each rider was credited per calendar year, kept by a trigger on the ledger, for the year-end expiry.

Revision ID: 3a9d6c1f5b27
Revises: 7b3f5d8e2a61
Create Date: 2026-12-02 11:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '3a9d6c1f5b27'
down_revision = '7b3f5d8e2a61'
branch_labels = None
depends_on = None

# PostgreSQL: once per statement, from the rows it inserted (one aggregated upsert for a batch of trips), in key
# order. Every writer of credits has locked the rider's row first, so two statements never wait on each other here.
PG_FUNCTION = """
CREATE FUNCTION rollup_rider_years_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_rider_years (rider_id, year, points_earned)
    SELECT rider_id, CAST(EXTRACT(YEAR FROM earned_on) AS integer), SUM(points) FROM new_entries
    WHERE points > 0 GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (rider_id, year) DO UPDATE SET points_earned = rollup_rider_years.points_earned + excluded.points_earned;
    RETURN NULL;
END $$
"""
PG_TRIGGER = """
CREATE TRIGGER ledger_entries_rider_years AFTER INSERT ON ledger_entries REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION rollup_rider_years_add()
"""
SQLITE_TRIGGER = """
CREATE TRIGGER ledger_entries_rider_years AFTER INSERT ON ledger_entries WHEN NEW.points > 0 BEGIN
    INSERT INTO rollup_rider_years (rider_id, year, points_earned)
    VALUES (NEW.rider_id, CAST(strftime('%Y', NEW.earned_on) AS integer), NEW.points)
    ON CONFLICT (rider_id, year) DO UPDATE SET points_earned = points_earned + excluded.points_earned;
END
"""


def upgrade():
    op.create_table('rollup_rider_years',
    sa.Column('rider_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('points_earned', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('rider_id', 'year', name=op.f('pk_rollup_rider_years'))
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    year = "CAST(EXTRACT(YEAR FROM earned_on) AS integer)" if postgres else "CAST(strftime('%Y', earned_on) AS integer)"
    if postgres:
        # Writers of the ledger wait from here to the commit, so no credit falls between the fill and the trigger.
        op.execute("LOCK TABLE ledger_entries IN SHARE ROW EXCLUSIVE MODE")
    op.execute(f"INSERT INTO rollup_rider_years (rider_id, year, points_earned) SELECT rider_id, {year}, SUM(points) "
               "FROM ledger_entries WHERE points > 0 GROUP BY 1, 2")
    if postgres:
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade():
    op.execute("DROP TRIGGER IF EXISTS ledger_entries_rider_years" +
               (" ON ledger_entries" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS rollup_rider_years_add()")
    op.drop_table('rollup_rider_years')
