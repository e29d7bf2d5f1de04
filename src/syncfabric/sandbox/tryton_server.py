"""A real Tryton ERP server on 127.0.0.1, for the demo (``syncfabric demo --erp-europe tryton``) and the tests.

Tryton runs from its own virtual environment, never ours (its pins never meet the product's):
``SYNCFABRIC_TRYTON_VENV``, else ``.venv-tryton`` beside ``pyproject.toml`` (a source checkout; ``scripts/test``
creates it with trytond 8.2 and the product, stock, purchase and production modules), else ``./.venv-tryton``.

- :func:`initialised_database` makes a SQLite database with :data:`MODULES` activated once (``trytond-admin``,
  about 45 s) and keeps the file in ``.cache/tryton/<versions>/`` (the folder name is a digest of the installed
  Tryton packages, so an upgrade initialises again); a copy of it is what each server starts from;
- :class:`LocalTryton` starts ``trytond`` on a copy in a temporary folder at a free port, waits until it answers
  JSON-RPC, and stops it (and removes the folder) at the end.

Other files next to the initialised one can be cached the same way (:func:`cache_dir`): the demo keeps its seeded
European company there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from syncfabric.errors import SyncfabricError
from syncfabric.sandbox.processes import log_tail, stop_process

MODULES = ("product", "stock", "stock_supply", "purchase", "production", "production_routing")
DATABASE = "syncfabric"
USER = "admin"
PASSWORD = "tryton-admin-pw"
INSTALL = ("python3 -m venv .venv-tryton && .venv-tryton/bin/pip install 'trytond==8.2.*' 'trytond-company==8.2.*' "
           "'trytond-party==8.2.*' 'trytond-currency==8.2.*' 'trytond-country==8.2.*' 'trytond-product==8.2.*' "
           "'trytond-stock==8.2.*' 'trytond-stock-supply==8.2.*' 'trytond-purchase==8.2.*' "
           "'trytond-production==8.2.*' 'trytond-production-routing==8.2.*'")
_SOURCE_ROOT = Path(__file__).resolve().parents[3]


class TrytonUnavailable(SyncfabricError):
    """No Tryton environment here, or its server would not start."""


@dataclass(frozen=True)
class TrytonServer:
    url: str
    database: str
    user: str
    password: str
    folder: Path
    pid: int
    """The trytond process."""


def _root() -> Path:
    return _SOURCE_ROOT if (_SOURCE_ROOT / "pyproject.toml").exists() else Path.cwd()


def venv_dir() -> Path:
    return Path(os.environ.get("SYNCFABRIC_TRYTON_VENV") or _root() / ".venv-tryton")


def available() -> bool:
    return (venv_dir() / "bin" / "trytond").exists() and (venv_dir() / "bin" / "trytond-admin").exists()


def missing_message() -> str:
    return (f"no Tryton environment at {venv_dir()} (trytond not found): run scripts/test in a source checkout, "
            f"which creates .venv-tryton, or `{INSTALL}`, or point SYNCFABRIC_TRYTON_VENV at one")


def versions_key() -> str:
    """A digest of the installed Tryton distributions (names and versions) and the modules activated."""
    found = sorted(path.name for path in venv_dir().glob("lib/python*/site-packages/trytond*.dist-info"))
    return hashlib.sha256("\n".join([*found, *MODULES]).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """Where initialised (and seeded) databases of the installed Tryton are kept."""
    return _root() / ".cache" / "tryton" / versions_key()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path, port: int) -> Path:
    path = folder / "trytond.conf"
    path.write_text(f"[database]\nuri = sqlite://\npath = {folder}\n\n[web]\nlisten = 127.0.0.1:{port}\n\n"
                    "[session]\ntimeout = 3600\n")
    return path


def keep(source: Path, target: Path) -> Path:
    """Copy the database ``source`` to ``target`` atomically: a concurrent reader sees the whole file or none.
    Tryton keeps SQLite in WAL mode; the copy is SQLite's backup, so it holds what the log has not checkpointed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.{os.getpid()}"
    with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(partial)) as copy:
        live.backup(copy)
    partial.replace(target)
    return target


@contextmanager
def cache_lock() -> Iterator[None]:
    """Held while a cached database is made, so that two processes (a test session and a demo) make it once."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def initialised_database() -> Path:
    """The cached initialised database file, made when missing."""
    if not available():
        raise TrytonUnavailable(missing_message())
    target = cache_dir() / f"{DATABASE}.sqlite"
    if target.exists():
        return target
    with cache_lock():
        return target if target.exists() else _initialise(target)


def _initialise(target: Path) -> Path:
    work = Path(tempfile.mkdtemp(prefix="syncfabric-tryton-init-"))
    try:
        (work / f"{DATABASE}.sqlite").touch()
        password_file = work / "password"
        password_file.write_text(PASSWORD)
        done = subprocess.run(
            [str(venv_dir() / "bin" / "trytond-admin"), "-c", str(_config(work, 0)), "-d", DATABASE, "-u",
             *MODULES, "--activate-dependencies", "--email", "admin@example.com"],
            env={**os.environ, "TRYTONPASSFILE": str(password_file)}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise TrytonUnavailable(f"trytond-admin failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                                    f"{done.stderr[-3000:]}")
        return keep(work / f"{DATABASE}.sqlite", target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class LocalTryton:
    """trytond on a copy of a database file (the initialised one by default), in a temporary folder."""

    def __init__(self, database_file: Path | None = None) -> None:
        self.database_file = database_file
        self.folder = Path(tempfile.mkdtemp(prefix="syncfabric-tryton-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.folder / "trytond.log"

    @property
    def database_path(self) -> Path:
        """The live database file of this server (copy it after a ``stop`` to keep what was done)."""
        return self.folder / f"{DATABASE}.sqlite"

    def start(self) -> TrytonServer:
        shutil.copyfile(self.database_file or initialised_database(), self.database_path)
        port = free_port()
        config = _config(self.folder, port)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(venv_dir() / "bin" / "trytond"), "-c", str(config), "-d", DATABASE, "--pidfile",
                 str(self.folder / "trytond.pid")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.folder)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TrytonUnavailable(f"trytond exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                answer = httpx.post(f"{url}/rpc/", json={"id": 0, "method": "common.server.version", "params": []},
                                    timeout=2)
                if answer.status_code == 200 and "result" in answer.json():
                    return TrytonServer(url, DATABASE, USER, PASSWORD, self.folder, self.process.pid)
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise TrytonUnavailable(f"trytond did not answer on {url} within 90 s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return log_tail(self.log)

    def terminate(self) -> None:
        """Stop the server, keeping its folder (and database file)."""
        stop_process(self.process)

    def stop(self) -> None:
        try:
            self.terminate()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
