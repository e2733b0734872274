"""A real PostgreSQL server for the deployment tests: Debian's `postgresql`, started on a free port."""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
USER = "jouletrace"


def postgres_binaries() -> Path | None:
    """The newest Debian PostgreSQL bin folder (not on PATH there), else the one holding `pg_ctl` on PATH."""
    folders = [Path(f) for f in glob.glob(DEBIAN_BINARIES) if Path(f, "pg_ctl").exists()]
    if folders:
        return max(folders, key=lambda f: int(f.parent.name) if f.parent.name.isdigit() else 0)
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """Connection details of a running server; the password exists only in this process's memory."""

    host: str
    port: int
    user: str
    password: str
    database: str = "postgres"

    def env(self, database: str) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": database,
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
        }

    def connect(self, database: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
        )

    def create_database(self, name: str) -> None:
        connection = self.connect()
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()


def _run(command: list[str], account: pwd.struct_passwd | None, **kwargs) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool, as `account` when given (PostgreSQL refuses to run as root)."""
    drop = {} if account is None else {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, **drop, **kwargs)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """Start PostgreSQL with `initdb` and `pg_ctl` on 127.0.0.1 and a free port, with password
    (SCRAM) authentication over TCP; stop it and remove its files afterwards.

    As a normal user the cluster lives under pytest's temporary folder. As root (CI) the server runs as
    `nobody`, which cannot enter pytest's root-only temporary folders, so the cluster goes to a fresh
    folder under the system temporary directory owned by `nobody`, removed at the end.
    """
    binaries = postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql as root)")
    account = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("running as root without a 'nobody' account to run PostgreSQL as")
        base = Path(tempfile.mkdtemp(prefix="jouletrace-postgres-"))
        os.chown(base, account.pw_uid, account.pw_gid)
    else:
        base = tmp_path_factory.mktemp("postgres")
    data, log = base / "data", base / "server.log"
    password = secrets.token_urlsafe(24)
    password_file = base / "password"
    password_file.write_text(password)
    password_file.chmod(0o600)
    if account is not None:
        os.chown(password_file, account.pw_uid, account.pw_gid)
    try:
        init = _run(
            [
                str(binaries / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                USER,
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            account,
        )
        assert init.returncode == 0, init.stdout + init.stderr
    finally:
        password_file.unlink(missing_ok=True)
    port = None
    for _ in range(3):  # the free port may be taken between the probe and the server's bind
        candidate = _free_port()
        options = (
            f"-c port={candidate} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        start = _run(
            [str(binaries / "pg_ctl"), "--pgdata", str(data), "--log", str(log), "-w", "-t", "30"]
            + ["-o", options, "start"],
            account,
        )
        if start.returncode == 0:
            port = candidate
            break
    if port is None:
        text = log.read_text() if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {start.stdout}{start.stderr}\n{text}")
    try:
        yield PostgresServer(host="127.0.0.1", port=port, user=USER, password=password)
    finally:
        _run([str(binaries / "pg_ctl"), "--pgdata", str(data), "-m", "immediate", "-w", "stop"], account)
        shutil.rmtree(base, ignore_errors=True)
