"""Statements: when the owner was mailed that a statement is overdue, and the partial index the daily job reads
(owed statements not yet mailed, by due date).

Revision ID: dcf9fc576333
Revises: 988a8181c7e0
Create Date: 2026-12-01 22:45:10.060024

"""
import sqlalchemy as sa
from alembic import op

import metropoints.core.db

# revision identifiers, used by Alembic.
revision = 'dcf9fc576333'
down_revision = '988a8181c7e0'
branch_labels = None
depends_on = None

OVERDUE_UNNOTIFIED = "overdue_notified_at IS NULL AND status IN ('issued', 'payment_failed')"


def upgrade():
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overdue_notified_at', metropoints.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_statements_overdue_unnotified', ['due_at'], unique=False, postgresql_where=sa.text(OVERDUE_UNNOTIFIED), sqlite_where=sa.text(OVERDUE_UNNOTIFIED))


def downgrade():
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.drop_index('ix_statements_overdue_unnotified', postgresql_where=sa.text(OVERDUE_UNNOTIFIED), sqlite_where=sa.text(OVERDUE_UNNOTIFIED))
        batch_op.drop_column('overdue_notified_at')
