"""Each rider's carbon account per mode on the rider's row (`<mode>_metres`, `<mode>_co2e_grams`, `<mode>_points` of
their credited and capped trips), filled from the trips and kept by the statements that credit trips, so a rider's
own figures (`GET /api/v1/me`) are one row instead of every trip the rider ever made.

Revision ID: 2c6e9a4f7b31
Revises: 5f1d3a7c9e24
Create Date: 2026-12-08 00:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '2c6e9a4f7b31'
down_revision = '5f1d3a7c9e24'
branch_labels = None
depends_on = None

# Frozen here as they are today (accrual.rollups.rider_figure_columns).
MODES = ("metro", "bus", "bike", "walk")
FIGURES = {"metres": "distance_m", "co2e_grams": "co2e_grams", "points": "points"}
COLUMNS = [(mode, f"{mode}_{figure}", column) for mode in MODES for figure, column in FIGURES.items()]


def upgrade():
    with op.batch_alter_table('riders', schema=None) as batch_op:
        for _, name, _ in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), server_default='0', nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        # Writers of trips wait from here to the commit, so no credit falls between the fill and the code that keeps
        # the figures from now on.
        op.execute("LOCK TABLE trips IN SHARE ROW EXCLUSIVE MODE")
    sums = ", ".join(f"SUM(CASE WHEN t.mode = '{mode}' THEN t.{column} ELSE 0 END) AS {name}"
                     for mode, name, column in COLUMNS)
    sets = ", ".join(f"{name} = agg.{name}" for _, name, _ in COLUMNS)
    op.execute(f"UPDATE riders SET {sets} FROM (SELECT t.rider_id, {sums} FROM trips t "
               "WHERE t.status IN ('credited', 'capped') AND t.rider_id IS NOT NULL GROUP BY t.rider_id) agg "
               "WHERE riders.id = agg.rider_id")


def downgrade():
    with op.batch_alter_table('riders', schema=None) as batch_op:
        for _, name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
