"""Trip changes: `trip_changes` names each trip changed after it was stored (a review decision, a held trip credited
when its card was linked), written by the statements that change it; the carbon export takes and empties it, so a
change to a trip of a month already exported is in the next export of any month without reading the months exported
before.

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


def upgrade():
    op.create_table('trip_changes',
    sa.Column('trip_pk', BigId, nullable=False),
    sa.Column('service_day', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('trip_pk', name=op.f('pk_trip_changes'))
    )


def downgrade():
    op.drop_table('trip_changes')
