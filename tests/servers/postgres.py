"""A PostgreSQL server for the tests marked ``postgres``.

- ``SYNCFABRIC_TEST_POSTGRES_URL`` set: that server is used (a CI service, a developer's own server); its database
  must be free for the tests to create and drop schemas in.
- Otherwise the session starts a throwaway server from Debian's binaries (``/usr/lib/postgresql/<version>/bin``,
  highest version, else ``initdb`` on PATH) in a temporary folder, listening on 127.0.0.1 only on a free port with
  its socket in that folder, tuned for speed over durability, and stops it when the session ends.
- No binaries: the postgres-marked tests are skipped, or fail when ``CI`` is set, so that CI never goes green by
  skipping them.

Fixtures:

- ``postgres_url`` (session): a ``postgresql://`` URL of a database the session may use freely.
- ``postgres_schema_url`` (per test): the same database with a fresh, empty schema first on the ``search_path``,
  dropped after the test. Much faster than a database per test, and just as isolated for code that does not
  qualify table names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

from syncfabric.sandbox import processes
from tests.servers.common import free_port, running, skip_unless_available, unavailable

ENV_URL = "SYNCFABRIC_TEST_POSTGRES_URL"
MISSING = "PostgreSQL server binaries not found: install Debian's postgresql package"
DATABASE = "syncfabric_test"
SERVER_USER = "postgres"
"""The OS user the server runs as when the tests run as root (PostgreSQL refuses to run as root)."""


def find_bin_dir() -> Path | None:
    """The folder of the newest installed ``initdb`` and ``pg_ctl``, if any."""
    found: list[tuple[tuple[int, ...], Path]] = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        version = initdb.parents[1].name
        if all(part.isdigit() for part in version.split(".")) and (initdb.parent / "pg_ctl").exists():
            found.append((tuple(int(part) for part in version.split(".")), initdb.parent))
    if found:
        return max(found)[1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None


def libpq_url(url: str) -> str:
    """``url`` without a SQLAlchemy driver suffix (``postgresql+psycopg://`` -> ``postgresql://``), for libpq."""
    scheme, rest = url.split("://", 1)
    return scheme.split("+", 1)[0] + "://" + rest


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections put ``schema`` first on the search_path (libpq's ``options`` parameter)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = (query.get("options", "") + f" -csearch_path={schema}").strip()
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


class ServerError(RuntimeError):
    pass


class LocalServer:
    """A PostgreSQL cluster in a temporary folder, for one test session."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="syncfabric-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.started = False
        if self.as_root:
            import pwd

            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *args: str | Path) -> None:
        command = [str(a) for a in args]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ServerError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        tail = processes.log_tail(self.log)
        return f"server log:\n{tail}" if tail else ""

    def start(self) -> str:
        self._run(self.bin_dir / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-locale", "--no-sync")
        for attempt in range(3):
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._run(self.bin_dir / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60",
                          "start")
                break
            except ServerError:
                if attempt == 2:  # the port may have been taken between probing and binding; try another
                    raise
        self.started = True
        import psycopg

        server = f"postgresql://postgres@127.0.0.1:{port}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        return f"{server}/{DATABASE}"

    def stop(self) -> None:
        try:
            if self.started:
                self._run(self.bin_dir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        finally:
            # The server may still be removing its socket files as it exits; retry until the folder is gone.
            for _ in range(50):
                shutil.rmtree(self.root, ignore_errors=True)
                if not self.root.exists():
                    break
                time.sleep(0.1)



def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    available = bool(os.environ.get(ENV_URL) or find_bin_dir() is not None)
    skip_unless_available(items, "postgres", available=available, reason=MISSING)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable(MISSING)
    yield from running(LocalServer(bin_dir), "a PostgreSQL server", (ServerError, OSError, subprocess.SubprocessError))


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_search_path(postgres_url, schema)
    finally:
        with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            try:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            except psycopg.errors.LockNotAvailable:
                warnings.warn(f"schema {schema} is still in use (a store left open?); not dropped", stacklevel=1)
