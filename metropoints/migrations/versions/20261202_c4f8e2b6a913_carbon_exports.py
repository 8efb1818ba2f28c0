"""Carbon exports: `carbon_exports` (a run of `flask carbon export` for a month, with its summary) and
`carbon_export_lines` (a line per trip the first time it is exported, unique per trip; an adjustment line per later
change of an exported trip). Lines are never changed or deleted (a trigger refuses it): what was sent stays as sent.

Revision ID: c4f8e2b6a913
Revises: b7e4a1c9d352
Create Date: 2026-12-02 17:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c4f8e2b6a913'
down_revision = 'b7e4a1c9d352'
branch_labels = None
depends_on = None

GUARD = "carbon export lines are kept as sent: a correction is a new adjustment line"
BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    op.create_table('carbon_exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('trip_lines', sa.Integer(), nullable=False),
    sa.Column('adjustment_lines', sa.Integer(), nullable=False),
    sa.Column('summary_json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_carbon_exports'))
    )
    op.create_index('ix_carbon_exports_period', 'carbon_exports', ['period', 'id'], unique=False)
    op.create_table('carbon_export_lines',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('export_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('trip', 'adjustment', name='export_line_kind', native_enum=False,
                              create_constraint=True, length=24), nullable=False),
    sa.Column('trip_pk', BigId, nullable=False),
    sa.Column('service_day', sa.Date(), nullable=False),
    sa.Column('mode', sa.Enum('metro', 'bus', 'bike', 'walk', name='export_mode', native_enum=False,
                              create_constraint=True, length=24), nullable=False),
    sa.Column('rule_version_id', sa.Integer(), nullable=False),
    sa.Column('distance_m', sa.Integer(), nullable=False),
    sa.Column('co2e_grams', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['export_id'], ['carbon_exports.id'],
                            name=op.f('fk_carbon_export_lines_export_id_carbon_exports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_carbon_export_lines'))
    )
    op.create_index('uq_carbon_export_trip', 'carbon_export_lines', ['trip_pk'], unique=True,
                    postgresql_where=sa.text("kind = 'trip'"), sqlite_where=sa.text("kind = 'trip'"))
    op.create_index('ix_carbon_export_lines_day', 'carbon_export_lines', ['service_day', 'trip_pk'], unique=False)
    op.create_index('ix_carbon_export_lines_export', 'carbon_export_lines', ['export_id', 'mode', 'id'], unique=False)
    if _sqlite():
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER carbon_export_lines_no_{action.lower()} BEFORE {action} ON "
                       f"carbon_export_lines BEGIN SELECT RAISE(ABORT, '{GUARD}'); END")
    else:
        op.execute("CREATE FUNCTION carbon_export_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   f"BEGIN RAISE EXCEPTION '{GUARD}'; END $$")
        op.execute("CREATE TRIGGER carbon_export_lines_guard BEFORE UPDATE OR DELETE ON carbon_export_lines "
                   "FOR EACH ROW EXECUTE FUNCTION carbon_export_lines_guard()")


def downgrade():
    if not _sqlite():
        op.execute("DROP TRIGGER carbon_export_lines_guard ON carbon_export_lines")
        op.execute("DROP FUNCTION carbon_export_lines_guard()")
    op.drop_index('ix_carbon_export_lines_export', table_name='carbon_export_lines')
    op.drop_index('ix_carbon_export_lines_day', table_name='carbon_export_lines')
    op.drop_index('uq_carbon_export_trip', table_name='carbon_export_lines',
                  postgresql_where=sa.text("kind = 'trip'"), sqlite_where=sa.text("kind = 'trip'"))
    op.drop_table('carbon_export_lines')
    op.drop_index('ix_carbon_exports_period', table_name='carbon_exports')
    op.drop_table('carbon_exports')
