"""API tokens: when each was last used, and who revoked it.

Revision ID: 7b3f5d8e2a61
Revises: 4e1a7c2b9d10
Create Date: 2026-12-02 01:00:01.000000

"""
import sqlalchemy as sa
from alembic import op

import metropoints.core.db

# revision identifiers, used by Alembic.
revision = '7b3f5d8e2a61'
down_revision = '4e1a7c2b9d10'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_used_at', metropoints.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revoked_by', sa.String(length=120), server_default='', nullable=False))
        batch_op.add_column(sa.Column('revoke_reason', sa.Text(), server_default='', nullable=False))
        batch_op.create_index('ix_api_tokens_kind_id', ['kind', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_api_tokens_kind_id')
        batch_op.drop_column('revoke_reason')
        batch_op.drop_column('revoked_by')
        batch_op.drop_column('last_used_at')
