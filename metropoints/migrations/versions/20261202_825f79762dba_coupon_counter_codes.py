"""Coupon counter codes: 12 digits a cashier can type, unique among issued coupons; the unknown codes each store's
counter sent (its guess limit); coupons by campaign and issue time (the owner dashboard's daily series).

Every existing coupon gets a counter code, distinct from every other issued one's. The check digit is computed here
with a copy of the Damm table (a migration must not change when the application's code does).

Revision ID: 825f79762dba
Revises: dcf9fc576333
Create Date: 2026-12-02 00:00:30.873974

"""
import secrets

import sqlalchemy as sa
from alembic import op

import metropoints.core.db

# revision identifiers, used by Alembic.
revision = '825f79762dba'
down_revision = 'dcf9fc576333'
branch_labels = None
depends_on = None

ISSUED = "status = 'issued'"
BATCH = 1000
# A frozen copy of redemption.codes' table: a migration must not change when the app's code does.
DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def counter_code():
    """11 random digits and their Damm check digit."""
    digits = f"{secrets.randbelow(10**11):011d}"
    interim = 0
    for digit in digits:
        interim = DAMM[interim][int(digit)]
    return digits + str(interim)


def backfill():
    """A counter code for every coupon, in batches; the issued ones' codes all distinct."""
    bind = op.get_bind()
    coupons = sa.table('coupons', sa.column('id', sa.Integer), sa.column('status', sa.String),
                       sa.column('counter_code', sa.String))
    rows = bind.execute(sa.select(coupons.c.id, coupons.c.status).order_by(coupons.c.id)).all()
    taken = set()
    update = (sa.update(coupons).where(coupons.c.id == sa.bindparam('coupon_id'))
              .values(counter_code=sa.bindparam('new_code')))
    for start in range(0, len(rows), BATCH):
        values = []
        for coupon_id, status in rows[start:start + BATCH]:
            code = counter_code()
            while status == 'issued' and code in taken:
                code = counter_code()
            if status == 'issued':
                taken.add(code)
            values.append({'coupon_id': coupon_id, 'new_code': code})
        bind.execute(update, values)


def upgrade():
    op.create_table('unknown_code_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('at', metropoints.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_unknown_code_attempts_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unknown_code_attempts'))
    )
    with op.batch_alter_table('unknown_code_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_unknown_code_attempts_store_at', ['store_id', 'at'], unique=False)

    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('counter_code', sa.String(length=12), nullable=True))
    backfill()
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.alter_column('counter_code', existing_type=sa.String(length=12), nullable=False)
        batch_op.create_index('ix_coupons_campaign_issued', ['campaign_id', 'issued_at'], unique=False)
        batch_op.create_index('ix_coupons_counter_code_issued', ['counter_code'], unique=True, postgresql_where=sa.text(ISSUED), sqlite_where=sa.text(ISSUED))


def downgrade():
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.drop_index('ix_coupons_counter_code_issued', postgresql_where=sa.text(ISSUED), sqlite_where=sa.text(ISSUED))
        batch_op.drop_index('ix_coupons_campaign_issued')
        batch_op.drop_column('counter_code')

    with op.batch_alter_table('unknown_code_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_unknown_code_attempts_store_at')

    op.drop_table('unknown_code_attempts')
