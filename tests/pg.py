"""A PostgreSQL server for the tests: one throw-away cluster per test session, one fresh
database per test.

``MODBOT_TEST_POSTGRES_URL`` (a user allowed to create databases and roles, such as
``postgresql://modbot@127.0.0.1:5432/postgres``) names a server to use instead; CI's
``.ci/run`` starts one that way. Otherwise the tests start their own cluster from the
PostgreSQL binaries (Debian puts them in ``/usr/lib/postgresql/N/bin``, off ``PATH``)
in a temporary folder, on a free port of 127.0.0.1; as root they run it as the
unprivileged user ``modbot-pg`` (PostgreSQL refuses root), created if missing. When no
server can be had, PostgreSQL tests skip, saying why, and fail instead when CI=true.

The cluster trusts every local connection except the role ``modbot_pw``, which must
give its password (``PASSWORD_ROLE``): how the tests see a wrong password refused.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

URL_VARIABLE = "MODBOT_TEST_POSTGRES_URL"
# Read once, at collection: every test's environment is cleared of MODBOT_ variables.
GIVEN_URL = os.environ.get(URL_VARIABLE, "").strip()
SYSTEM_USER = "modbot-pg"  # runs the cluster when the tests run as root
SUPERUSER = "modbot"
PASSWORD_ROLE = "modbot_pw"  # the one role that must give a password (scram-sha-256)
HBA = f"""\
local all all trust
host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all {PASSWORD_ROLE} ::1/128 scram-sha-256
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
"""
# A test cluster holds nothing worth an fsync.
FAST = "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"


def unavailable(reason: str) -> NoReturn:
    """Skip a PostgreSQL test (fail it in CI) because no server can be had."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
    pytest.skip(
        f"no PostgreSQL server for the tests: {reason} (install PostgreSQL, or set "
        f"{URL_VARIABLE} to a server's URL)"
    )


def bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, or Debian's newest version."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=version)
    return candidates[-1].parent if candidates else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_database(url: str, name: str) -> str:
    """``url`` pointing at the database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class Cluster:
    """A PostgreSQL cluster in a temporary folder, started and stopped with pg_ctl."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.user = SYSTEM_USER if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="modbot-pg-"))
        self.data = self.root / "data"
        self.port = 0

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        command = [str(self.binaries / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self) -> str:
        """Create and start the cluster; its superuser's URL (raises RuntimeError)."""
        if self.user is not None:
            account = _system_user(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        done = self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--no-sync",
            "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {_last_line(done)}")
        (self.data / "pg_hba.conf").write_text(HBA)
        for _ in range(3):  # another process may take the free port first
            self.port = free_port()
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {FAST}"
            log = str(self.root / "log")
            done = self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log,
                             "-w", "-t", "30", "start")  # fmt: skip
            if done.returncode == 0:
                return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"
        log_tail = (self.root / "log").read_text(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"pg_ctl start failed: {_last_line(done)} {' '.join(log_tail)}")

    def stop(self) -> None:
        """Stop at once (the data goes too) and remove the folder."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True, check=True, timeout=30,
        )  # fmt: skip
        return pwd.getpwnam(name)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a server's maintenance database, for a user who may create databases."""
    given = GIVEN_URL
    if given:
        try:
            psycopg.connect(given, connect_timeout=10).close()
        except psycopg.Error as exc:
            unavailable(f"{URL_VARIABLE} does not answer ({' '.join(str(exc).split())})")
        yield given
        return
    binaries = bin_dir()
    if binaries is None:
        unavailable("no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin")
    cluster = Cluster(binaries)
    try:
        url = cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        unavailable(f"a test cluster could not start: {exc}")
    try:
        yield url
    finally:
        cluster.stop()


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new, empty database on ``server`` (a ``postgres_server`` URL); dropped on leaving,
    connections and all. For tests that need several, e.g. one per hypothesis example."""
    name = f"modbot_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The URL of a fresh, empty database of its own for one test; dropped after it."""
    with fresh_database(postgres_server) as url:
        yield url
