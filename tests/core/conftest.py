"""A real streaming replica of the test PostgreSQL, for the replica tests: a second cluster made by pg_basebackup from
127.0.0.1:5432 into a temporary directory, started with pg_ctl on a free port, stopped and removed at the end.

The primary must accept replication connections from 127.0.0.1 (`.ci/run` adds that pg_hba.conf entry). Run as
root, the cluster's commands run as the `postgres` account (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.campaigns.conftest import create_operator, login  # noqa: F401  (fixtures)
from tests.conftest import ADMIN_URL

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REPLICATION_USER = os.environ.get("TEST_PG_REPLICATION_USER", "postgres")
# A hot standby needs these at least as high as on its primary; they are copied from it.
COPIED_SETTINGS = ("max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions",
                   "max_locks_per_transaction")


def as_cluster_owner(command: list[str]) -> list[str]:
    """The command as the account that may run PostgreSQL (not root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class StreamingReplica:
    """A replica cluster streaming from the test PostgreSQL."""

    home: Path
    port: int

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.home / "data"

    def url(self, database: str) -> str:
        """The URL of a database on the replica."""
        return f"postgresql://127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on the cluster."""
        subprocess.run(as_cluster_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]), check=True,
                       capture_output=True, timeout=120)

    def start(self) -> None:
        """Start the cluster and wait until it streams from the primary."""
        self.pg_ctl("-l", str(self.home / "server.log"), "-w", "-t", "60", "start")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                    if conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone() == ("streaming",):
                        return
            except psycopg.OperationalError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the replica did not start streaming: " + (self.home / "server.log").read_text())

    def stop(self) -> None:
        """Stop the cluster (fast: connections are cut)."""
        self.pg_ctl("-m", "fast", "-w", "stop")

    def execute(self, sql: str) -> None:
        """Run a statement on the replica (e.g. pausing its replay)."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def catch_up(self, timeout: float = 30) -> None:
        """Wait until the replica streams and has replayed everything the primary had written when this was called
        (what the app's lag check calls caught up)."""
        with psycopg.connect(ADMIN_URL, autocommit=True) as primary:
            (target,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            while time.monotonic() < deadline:
                if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn "
                                "AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
                                "AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')",
                                (target,)).fetchone()[0]:
                    return
                time.sleep(0.05)
        raise RuntimeError("the replica did not catch up")


def make_replica(home: Path) -> StreamingReplica:
    """Copy the primary with pg_basebackup (-R: it starts as a standby of 127.0.0.1:5432) and configure it."""
    replica = StreamingReplica(home, free_port())
    done = subprocess.run(as_cluster_owner([
        str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", "5432", "-U", REPLICATION_USER, "-D", str(replica.data),
        "-R", "-X", "stream", "-c", "fast"]), capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail("pg_basebackup failed (does pg_hba.conf allow replication from 127.0.0.1? .ci/run adds it): "
                    + done.stderr)
    with psycopg.connect(ADMIN_URL, autocommit=True) as primary:
        copied = {name: primary.execute(f"SHOW {name}").fetchone()[0] for name in COPIED_SETTINGS}
    settings = {"port": str(replica.port), "listen_addresses": "'127.0.0.1'",
                "unix_socket_directories": f"'{home}'", "hot_standby": "on", "fsync": "off", **copied}
    (replica.data / "postgresql.conf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    (replica.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    (replica.data / "pg_ident.conf").write_text("")
    if os.geteuid() == 0:
        for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
            shutil.chown(replica.data / name, "postgres", "postgres")
    return replica


@pytest.fixture(scope="session")
def streaming_replica(database_url: str) -> Iterator[StreamingReplica]:
    """A streaming replica of the test PostgreSQL (this run's database included), removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="mp-replica-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    try:
        replica = make_replica(home)
        replica.start()
        yield replica
    finally:
        if (home / "data" / "postmaster.pid").exists():
            subprocess.run(as_cluster_owner([str(PG_BIN / "pg_ctl"), "-D", str(home / "data"), "-m", "immediate",
                                             "-w", "stop"]), capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)
