"""A Tryton ERP server for the tests marked ``tryton``.

Tryton runs from its own virtual environment (``.venv-tryton`` beside ``pyproject.toml``, or
``SYNCFABRIC_TRYTON_VENV``), which ``scripts/test`` creates with trytond 8.2 and the product, stock, purchase and
production modules. The session:

- initialises a SQLite database once and keeps the file in ``.cache/tryton/<versions>/`` (about 45 s; the folder
  name is a digest of the installed Tryton packages, so an upgrade initialises again), then copies it into a
  temporary folder for this session;
- starts ``trytond`` on 127.0.0.1 at a free port, waits until it answers JSON-RPC, and stops it at the end.

Preparation starts in a background thread as soon as collection selects a Tryton test, so the other tests run
meanwhile; nothing happens when none is selected. Without the Tryton environment the tests are skipped, or fail
when ``CI`` is set, so that CI never goes green by skipping them.

Fixture ``tryton_server`` (session): a :class:`TrytonServer` with ``url``, ``database``, ``user``, ``password``
and the server's ``pid``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers.common import free_port

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("product", "stock", "stock_supply", "purchase", "production", "production_routing")
DATABASE = "syncfabric"
USER = "admin"
PASSWORD = "tryton-admin-pw"
MISSING = "the Tryton environment is missing (.venv-tryton with trytond): run scripts/test to create it"


@dataclass(frozen=True)
class TrytonServer:
    url: str
    database: str
    user: str
    password: str
    folder: Path
    pid: int
    """The trytond process (started by this session)."""


def venv_dir() -> Path:
    return Path(os.environ.get("SYNCFABRIC_TRYTON_VENV") or ROOT / ".venv-tryton")


def available() -> bool:
    return (venv_dir() / "bin" / "trytond").exists() and (venv_dir() / "bin" / "trytond-admin").exists()


def _versions_key() -> str:
    """A digest of the installed Tryton distributions (names and versions) and the modules activated."""
    found = sorted(path.name for path in venv_dir().glob("lib/python*/site-packages/trytond*.dist-info"))
    return hashlib.sha256("\n".join([*found, *MODULES]).encode()).hexdigest()[:16]


def _config(folder: Path, port: int) -> Path:
    path = folder / "trytond.conf"
    path.write_text(f"[database]\nuri = sqlite://\npath = {folder}\n\n[web]\nlisten = 127.0.0.1:{port}\n\n"
                    "[session]\ntimeout = 3600\n")
    return path


def _initialised_database() -> Path:
    """The cached initialised database file, made when missing."""
    cache = ROOT / ".cache" / "tryton" / _versions_key()
    target = cache / f"{DATABASE}.sqlite"
    if target.exists():
        return target
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
            raise RuntimeError(f"trytond-admin failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                               f"{done.stderr[-3000:]}")
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f".{DATABASE}.sqlite.{os.getpid()}"
        shutil.copyfile(work / f"{DATABASE}.sqlite", partial)
        partial.replace(target)  # atomic: a concurrent session sees the whole file or none
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)



class LocalTryton:
    """trytond on a copy of the initialised database, in a temporary folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="syncfabric-tryton-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.folder / "trytond.log"

    def start(self) -> TrytonServer:
        shutil.copyfile(_initialised_database(), self.folder / f"{DATABASE}.sqlite")
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
                raise RuntimeError(f"trytond exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                answer = httpx.post(f"{url}/rpc/", json={"id": 0, "method": "common.server.version", "params": []},
                                    timeout=2)
                if answer.status_code == 200 and "result" in answer.json():
                    return TrytonServer(url, DATABASE, USER, PASSWORD, self.folder, self.process.pid)
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"trytond did not answer on {url} within 90 s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=15)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class _Starter:
    """Prepares the server in a background thread; the fixture waits for it."""

    def __init__(self) -> None:
        self.server = LocalTryton()
        self.result: TrytonServer | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="tryton-start", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.server.start()
        except BaseException as exc:  # handed to the fixture, which fails with it
            self.error = exc

    def wait(self) -> TrytonServer:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


_starter: _Starter | None = None


@pytest.hookimpl(trylast=True)  # after -m / -k deselection: start only for tests that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    global _starter
    wanted = [item for item in items if "tryton" in item.keywords]
    if not wanted:
        return
    if not available():
        if os.environ.get("CI"):
            return  # the fixture fails loudly instead
        skip = pytest.mark.skip(reason=MISSING)
        for item in wanted:
            item.add_marker(skip)
        return
    if _starter is None and not config.option.collectonly:
        _starter = _Starter()


@pytest.fixture(scope="session")
def tryton_server() -> Iterator[TrytonServer]:
    global _starter
    if not available():
        if os.environ.get("CI"):
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    starter = _starter or _Starter()
    _starter = None
    try:
        server = starter.wait()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        starter.server.stop()
        pytest.fail(f"could not start a Tryton server for the tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        starter.server.stop()


def pytest_unconfigure(config: pytest.Config) -> None:
    """A server prepared for tests that were then deselected or skipped is stopped too."""
    global _starter
    if _starter is not None:
        _starter.thread.join()
        _starter.server.stop()
        _starter = None
