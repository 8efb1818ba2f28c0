"""Trips and the points ledger become monthly partitions on PostgreSQL; global uniqueness moves to two key tables.

PostgreSQL (declarative range partitions, one a month):
- `trips` by `service_day` (the Asia/Shanghai date of the exit): the daily cap's probe (rider, service day), the
  held-trip sweep (30 days back) and every per-day figure name it, so they read one or two months.
- `ledger_entries` by `earned_on`: the year-end expiry reads only the year it closes, and the per-day figures
  prune like the trips'. A trip's entry is earned on its trip's service day.
- A unique index on a partitioned table must contain the partition key, so what was unique across the whole table
  is kept in a small plain table written in the same statement: `trip_keys` (source, trip_id), claimed by the
  ingestion statement before it inserts the trip, and `ledger_keys` (kind, key), claimed by a row trigger for each
  redemption, refund and expiry entry. `uq_ledger_trip` becomes unique (trip_pk, earned_on), which is trip_pk
  alone because a trip's entry is always earned on that trip's service day.
- Primary keys become (id, partition key); ids still come from the same sequences, so they stay unique.
- The append-only and no-delete triggers and every CHECK are defined on the parent, so each partition has them.
- `ensure_month_partitions(today, months_ahead, since)` creates the missing months, from January of the year
  before `today` (the year-end expiry posts on 1 January of the year it closes) or `since` if earlier, to
  `months_ahead` months after `today`'s. `flask db upgrade` calls it after the migrations (env.py), and a daily
  job calls it (accrual.partitions). No DEFAULT partition: a row that landed there would block creating its month
  later, and every write names a month the function has made (trips are at most 30 days old, entries are earned
  today, on a recent trip's day, or on the 1 January of last year).
- Existing rows are copied into the partitions (every month they name is created first), then the old tables go.

SQLite (the zero-setup `make run`) keeps plain tables and its unique indexes; the two key tables exist there too,
filled the same way (ledger_keys by a trigger, trip_keys by the ingestion), so the code reads them on both.

Revision ID: c8518ec572a4
Revises: e53ce7083510
Create Date: 2026-12-02 00:20:00.000000

"""
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c8518ec572a4'
down_revision = 'e53ce7083510'
branch_labels = None
depends_on = None

MONTHS_AHEAD = 3  # what the migration makes; `flask db upgrade` then applies PARTITION_MONTHS_AHEAD

TRIP_COLUMNS = ("id, source, trip_id, batch_id, rider_ref, rider_id, entry_station, exit_station, entered_at, "
                "exited_at, service_day, distance_m, rule_version_id, points, co2e_grams, status, credited_at")
LEDGER_COLUMNS = "id, rider_id, at, earned_on, points, kind, trip_pk, rule_version_id, ref, reason, actor, balance_after"

TRIP_BODY = """
    id bigint NOT NULL DEFAULT nextval('trips_id_seq'::regclass),
    source varchar(32) NOT NULL,
    trip_id varchar(64) NOT NULL,
    batch_id integer NOT NULL,
    rider_ref varchar(64) NOT NULL,
    rider_id integer,
    entry_station varchar(8) NOT NULL,
    exit_station varchar(8) NOT NULL,
    entered_at timestamptz NOT NULL,
    exited_at timestamptz NOT NULL,
    service_day date NOT NULL,
    distance_m integer NOT NULL,
    rule_version_id integer NOT NULL,
    points integer NOT NULL,
    co2e_grams integer NOT NULL,
    status varchar(24) NOT NULL,
    credited_at timestamptz,
    CONSTRAINT ck_trips_held_iff_no_rider CHECK ((status = 'held') = (rider_id IS NULL)),
    CONSTRAINT ck_trips_points_not_negative CHECK (points >= 0),
    CONSTRAINT ck_trips_trip_status CHECK (status IN ('credited', 'capped', 'held')),
    CONSTRAINT pk_trips PRIMARY KEY ({trips_key})
"""
LEDGER_BODY = """
    id bigint NOT NULL DEFAULT nextval('ledger_entries_id_seq'::regclass),
    rider_id integer NOT NULL,
    at timestamptz NOT NULL,
    earned_on date NOT NULL,
    points integer NOT NULL,
    kind varchar(24) NOT NULL,
    trip_pk bigint,
    rule_version_id integer,
    ref varchar(64) NOT NULL,
    reason text NOT NULL,
    actor varchar(120) NOT NULL,
    balance_after bigint NOT NULL,
    CONSTRAINT ck_ledger_entries_adjustment_has_reason CHECK (kind <> 'adjustment' OR length(reason) > 0),
    CONSTRAINT ck_ledger_entries_balance_after_not_negative CHECK (balance_after >= 0),
    CONSTRAINT ck_ledger_entries_entry_kind CHECK (kind IN ('trip', 'redemption', 'refund', 'expiry', 'adjustment')),
    CONSTRAINT ck_ledger_entries_expiry_is_debit CHECK (kind <> 'expiry' OR points < 0),
    CONSTRAINT ck_ledger_entries_points_not_zero CHECK (points <> 0),
    CONSTRAINT ck_ledger_entries_trip_credit_names_trip CHECK (kind <> 'trip' OR trip_pk IS NOT NULL AND points > 0),
    CONSTRAINT pk_ledger_entries PRIMARY KEY ({ledger_key})
"""
OLD_INDEXES = {
    "trips": ("pk_trips", "ix_trips_held_ref", "ix_trips_rider_day", "uq_trips_source_trip_id"),
    "ledger_entries": ("pk_ledger_entries", "ix_ledger_rider", "uq_ledger_expiry", "uq_ledger_redemption",
                       "uq_ledger_refund", "uq_ledger_trip"),
}
PARTITIONED_INDEXES = """
CREATE INDEX ix_trips_rider_day ON trips (rider_id, service_day);
CREATE INDEX ix_trips_held_ref ON trips (source, rider_ref) WHERE status = 'held';
CREATE INDEX ix_ledger_rider ON ledger_entries (rider_id, id);
CREATE UNIQUE INDEX uq_ledger_trip ON ledger_entries (trip_pk, earned_on);
CREATE UNIQUE INDEX uq_ledger_expiry ON ledger_entries (rider_id, ref, earned_on) WHERE kind = 'expiry'
"""
PLAIN_INDEXES = """
CREATE INDEX ix_trips_rider_day ON trips (rider_id, service_day);
CREATE INDEX ix_trips_held_ref ON trips (source, rider_ref) WHERE status = 'held';
ALTER TABLE trips ADD CONSTRAINT uq_trips_source_trip_id UNIQUE (source, trip_id);
CREATE INDEX ix_ledger_rider ON ledger_entries (rider_id, id);
CREATE UNIQUE INDEX uq_ledger_trip ON ledger_entries (trip_pk);
CREATE UNIQUE INDEX uq_ledger_expiry ON ledger_entries (rider_id, ref) WHERE kind = 'expiry';
CREATE UNIQUE INDEX uq_ledger_redemption ON ledger_entries (ref) WHERE kind = 'redemption';
CREATE UNIQUE INDEX uq_ledger_refund ON ledger_entries (ref) WHERE kind = 'refund'
"""
TRIGGERS = """
CREATE TRIGGER trips_guard BEFORE DELETE ON trips FOR EACH ROW EXECUTE FUNCTION trips_guard();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()
"""
# The key a redemption, refund or expiry entry claims: a coupon is paid and refunded once, a rider's year expires once.
KEY_OF_NEW = "CASE WHEN NEW.kind = 'expiry' THEN NEW.rider_id || ':' || NEW.ref ELSE NEW.ref END"
CLAIM_KEY_FUNCTION = f"""
CREATE FUNCTION ledger_entries_claim_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_keys (kind, key) VALUES (NEW.kind, {KEY_OF_NEW});
    RETURN NEW;
END $$
"""
CLAIM_KEY_TRIGGER = """
CREATE TRIGGER ledger_entries_claim_key BEFORE INSERT ON ledger_entries FOR EACH ROW
    WHEN (NEW.kind IN ('redemption', 'refund', 'expiry')) EXECUTE FUNCTION ledger_entries_claim_key()
"""
# Idempotent and serialised (an advisory lock), so the job, `flask db upgrade` and a second worker can all run it.
# A month is made as a plain table and then attached: ATTACH takes a lock on the parent that lets reads and writes
# go on, where CREATE TABLE ... PARTITION OF would stop them. The attached table gets the parent's indexes and
# row triggers; LIKE ... INCLUDING CONSTRAINTS gives it the CHECKs that ATTACH requires.
ENSURE_FUNCTION = """
CREATE FUNCTION ensure_month_partitions(today date, months_ahead integer, since date DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    first_month date := (date_trunc('year', today) - interval '1 year')::date;
    last_month date := (date_trunc('month', today) + make_interval(months => months_ahead))::date;
    month date;
    part text;
    made integer := 0;
BEGIN
    IF since IS NOT NULL AND since < first_month THEN
        first_month := date_trunc('month', since)::date;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('ensure_month_partitions'));
    FOREACH parent IN ARRAY ARRAY['trips', 'ledger_entries'] LOOP
        month := first_month;
        WHILE month <= last_month LOOP
            part := parent || '_' || to_char(month, 'YYYY_MM');
            IF to_regclass(part) IS NULL THEN
                EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                               parent, part, month, (month + interval '1 month')::date);
                made := made + 1;
            END IF;
            month := (month + interval '1 month')::date;
        END LOOP;
    END LOOP;
    RETURN made;
END $$
"""


def _statements(sql: str) -> None:
    """Run each `;`-separated statement of a block."""
    for statement in sql.split(";"):
        if statement.strip():
            op.execute(statement)


def _key_tables() -> None:
    """The two plain tables that keep what must be unique across all months."""
    op.create_table('trip_keys',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('trip_id', sa.String(length=64), nullable=False),
    sa.Column('trip_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('service_day', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('source', 'trip_id', name=op.f('pk_trip_keys'))
    )
    op.create_table('ledger_keys',
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'key', name=op.f('pk_ledger_keys'))
    )


def _today() -> str:
    """Today's service day (Asia/Shanghai) as ISO text."""
    return datetime.now(UTC).astimezone(timezone(timedelta(hours=8))).date().isoformat()


def upgrade():
    _key_tables()
    if op.get_bind().dialect.name == "sqlite":
        op.execute("INSERT INTO trip_keys (source, trip_id, trip_pk, service_day) "
                   "SELECT source, trip_id, id, service_day FROM trips")
        op.execute("INSERT INTO ledger_keys (kind, key) SELECT kind, CASE WHEN kind = 'expiry' "
                   "THEN rider_id || ':' || ref ELSE ref END FROM ledger_entries "
                   "WHERE kind IN ('redemption', 'refund', 'expiry')")
        op.execute("CREATE TRIGGER ledger_entries_claim_key BEFORE INSERT ON ledger_entries "
                   "WHEN NEW.kind IN ('redemption', 'refund', 'expiry') BEGIN "
                   f"INSERT INTO ledger_keys (kind, key) VALUES (NEW.kind, {KEY_OF_NEW}); END")
        return
    op.execute(ENSURE_FUNCTION)
    op.execute(CLAIM_KEY_FUNCTION)
    for table, indexes in OLD_INDEXES.items():
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned")
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
        for index in indexes:
            op.execute(f"ALTER INDEX {index} RENAME TO {index}_unpartitioned")
    op.execute("CREATE TABLE trips (" + TRIP_BODY.format(trips_key="id, service_day") +
               ") PARTITION BY RANGE (service_day)")
    op.execute("CREATE TABLE ledger_entries (" + LEDGER_BODY.format(ledger_key="id, earned_on") +
               ") PARTITION BY RANGE (earned_on)")
    _statements(PARTITIONED_INDEXES)
    _statements(TRIGGERS)
    op.execute(CLAIM_KEY_TRIGGER)
    # Every month the rows name, then the months ahead.
    op.execute(sa.text(
        "SELECT ensure_month_partitions(CAST(:today AS date), :ahead, (SELECT LEAST("
        "(SELECT MIN(service_day) FROM trips_unpartitioned), (SELECT MIN(earned_on) FROM ledger_entries_unpartitioned)"
        ")))").bindparams(today=_today(), ahead=MONTHS_AHEAD))
    op.execute(f"INSERT INTO trips ({TRIP_COLUMNS}) SELECT {TRIP_COLUMNS} FROM trips_unpartitioned")
    op.execute("INSERT INTO trip_keys (source, trip_id, trip_pk, service_day) "
               "SELECT source, trip_id, id, service_day FROM trips_unpartitioned")
    # The claim trigger fills ledger_keys as the old entries go in.
    op.execute(f"INSERT INTO ledger_entries ({LEDGER_COLUMNS}) SELECT {LEDGER_COLUMNS} "
               "FROM ledger_entries_unpartitioned ORDER BY id")
    for table in OLD_INDEXES:
        op.execute(f"DROP TABLE {table}_unpartitioned")
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
        op.execute(f"ANALYZE {table}")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_claim_key")
        op.drop_table('ledger_keys')
        op.drop_table('trip_keys')
        return
    for table in OLD_INDEXES:
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_partitioned")
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")
    for index in ("pk_trips", "ix_trips_rider_day", "ix_trips_held_ref", "pk_ledger_entries", "ix_ledger_rider",
                  "uq_ledger_trip", "uq_ledger_expiry"):
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_partitioned")
    op.execute("CREATE TABLE trips (" + TRIP_BODY.format(trips_key="id") + ")")
    op.execute("CREATE TABLE ledger_entries (" + LEDGER_BODY.format(ledger_key="id") + ")")
    op.execute(f"INSERT INTO trips ({TRIP_COLUMNS}) SELECT {TRIP_COLUMNS} FROM trips_partitioned")
    op.execute(f"INSERT INTO ledger_entries ({LEDGER_COLUMNS}) SELECT {LEDGER_COLUMNS} FROM ledger_entries_partitioned")
    for table in OLD_INDEXES:
        op.execute(f"DROP TABLE {table}_partitioned")
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
    _statements(PLAIN_INDEXES)
    _statements(TRIGGERS)
    op.execute("DROP FUNCTION ledger_entries_claim_key()")
    op.execute("DROP FUNCTION ensure_month_partitions(date, integer, date)")
    op.drop_table('ledger_keys')
    op.drop_table('trip_keys')
