"""Coupons say whether a statement billed them, with a partial index of the unbilled used ones, so the monthly run
reads a month of coupons; the coupons' rollup gets an index by day, for windows of days across all campaigns.

Revision ID: 5c2e8b7d4f90
Revises: 3a9d6c1f5b27
Create Date: 2026-12-02 11:20:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5c2e8b7d4f90'
down_revision = '3a9d6c1f5b27'
branch_labels = None
depends_on = None

UNBILLED = "status = 'used' AND NOT billed"


def upgrade():
    # A constant default: PostgreSQL adds the column without rewriting the table.
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billed', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute("UPDATE coupons SET billed = true WHERE id IN (SELECT coupon_id FROM statement_lines)")
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.create_index('ix_coupons_unbilled', ['used_at'], unique=False,
                              postgresql_where=sa.text(UNBILLED), sqlite_where=sa.text(UNBILLED))
    with op.batch_alter_table('rollup_coupon_days', schema=None) as batch_op:
        batch_op.create_index('ix_rollup_coupon_days_day', ['service_day'], unique=False)


def downgrade():
    with op.batch_alter_table('rollup_coupon_days', schema=None) as batch_op:
        batch_op.drop_index('ix_rollup_coupon_days_day')
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.drop_index('ix_coupons_unbilled')
        batch_op.drop_column('billed')
