"""Rollups per service day (riders registered; credited and capped trips per rule version; coupons per campaign and
day of each event), filled from the rows already there so an upgraded database keeps its figures; the index the
owner's activity CSV reads a period's coupons of a campaign by; the audit log's index on time (its date filter).

Revision ID: e53ce7083510
Revises: 825f79762dba
Create Date: 2026-12-02 00:01:00.133044

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e53ce7083510'
down_revision = '825f79762dba'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The rollup tables, the coupons' (campaign, issued_at) index and the audit log's time index; rollups filled."""
    op.create_table('rollup_coupon_days',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('service_day', sa.Date(), nullable=False),
    sa.Column('bought', sa.Integer(), nullable=False),
    sa.Column('points_spent', sa.BigInteger(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.Column('cancelled', sa.Integer(), nullable=False),
    sa.Column('points_refunded', sa.BigInteger(), nullable=False),
    sa.Column('expired', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('campaign_id', 'service_day', name=op.f('pk_rollup_coupon_days'))
    )
    op.create_table('rollup_rider_days',
    sa.Column('service_day', sa.Date(), nullable=False),
    sa.Column('registered', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('service_day', name=op.f('pk_rollup_rider_days'))
    )
    op.create_table('rollup_trip_days',
    sa.Column('service_day', sa.Date(), nullable=False),
    sa.Column('rule_version_id', sa.Integer(), nullable=False),
    sa.Column('trips', sa.Integer(), nullable=False),
    sa.Column('metres', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('co2e_grams', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('service_day', 'rule_version_id', name=op.f('pk_rollup_trip_days'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
    fill_rollups()



def local_day(column: str) -> str:
    """SQL for the Asia/Shanghai date of a UTC timestamp column (SQLite keeps naive UTC text)."""
    if op.get_bind().dialect.name == "postgresql":
        return f"CAST(timezone('Asia/Shanghai', {column}) AS date)"
    return f"date({column}, '+8 hours')"


def fill_rollups() -> None:
    """The rollups of the rows already there, as `flask reports rebuild` computes them (frozen here)."""
    op.execute(f"INSERT INTO rollup_rider_days (service_day, registered) SELECT {local_day('created_at')}, COUNT(*) "
               f"FROM riders GROUP BY {local_day('created_at')}")
    op.execute("INSERT INTO rollup_trip_days (service_day, rule_version_id, trips, metres, points, co2e_grams) "
               "SELECT service_day, rule_version_id, COUNT(*), SUM(distance_m), SUM(points), SUM(co2e_grams) "
               "FROM trips WHERE status IN ('credited', 'capped') GROUP BY service_day, rule_version_id")
    events = " UNION ALL ".join((
        f"SELECT campaign_id, {local_day('issued_at')} AS d, 1 AS b, points_spent AS ps, 0 AS u, 0 AS c, 0 AS pr, "
        "0 AS e FROM coupons",
        f"SELECT campaign_id, {local_day('used_at')}, 0, 0, 1, 0, 0, 0 FROM coupons WHERE status = 'used'",
        f"SELECT campaign_id, {local_day('cancelled_at')}, 0, 0, 0, 1, points_spent, 0 FROM coupons "
        "WHERE status = 'cancelled'",
        f"SELECT campaign_id, {local_day('expired_at')}, 0, 0, 0, 0, 0, 1 FROM coupons WHERE status = 'expired'"))
    op.execute("INSERT INTO rollup_coupon_days (campaign_id, service_day, bought, points_spent, used, cancelled, "
               "points_refunded, expired) SELECT campaign_id, d, SUM(b), SUM(ps), SUM(u), SUM(c), SUM(pr), SUM(e) "
               f"FROM ({events}) ev GROUP BY campaign_id, d")


def downgrade() -> None:
    """Drop what upgrade() added."""
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('rollup_trip_days')
    op.drop_table('rollup_rider_days')
    op.drop_table('rollup_coupon_days')
