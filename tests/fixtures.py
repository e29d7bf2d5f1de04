"""Fixtures and helpers that several test packages share (a pytest plugin: see ``tests/conftest.py``).

- :func:`served`: a module's ``base_url`` fixture, a sandbox system served over real HTTP on 127.0.0.1, one server
  per test module::

      base_url = served(lambda: create_app(token=TOKEN))

- ``control`` (per test): that system's sandbox control surface (``/api/_sandbox``: faults, journal), reset first.
- ``db_url`` (per test): an empty SQL database, once on SQLite and once on PostgreSQL (marked ``postgres``), as a
  SQLAlchemy URL.
- :func:`estate_with`, :func:`cli`, :func:`store_of`: an estate written to a test's folder, driven through the
  command line in-process, and its store.
- :func:`walking_skeleton`: the walking-skeleton example in a test's folder, its legacy ERP's exports written and the
  planning platform served.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from syncfabric.cli import app
from syncfabric.config import load_estate
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve
from syncfabric.store import Store, open_store

runner = CliRunner()
WALKING_SKELETON = Path(__file__).parents[1] / "examples" / "walking-skeleton" / "estate.yaml"


def served(make_app: Callable[[], Any]) -> Any:
    """A module-scoped fixture serving the app ``make_app`` builds; it yields the server's base URL."""

    @pytest.fixture(scope="module")
    def base_url() -> Iterator[str]:
        with serve(make_app()) as url:
            yield url

    return base_url


@pytest.fixture
def control(base_url: str) -> Iterator[httpx.Client]:
    """The sandbox control surface of the module's ``base_url`` system, reset before each test."""
    with httpx.Client(base_url=f"{base_url}/api/_sandbox") as client:
        client.post("/reset").raise_for_status()
        yield client


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/db.sqlite"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def estate_with(folder: Path, text: str, drop: dict[str, str] | None = None) -> Path:
    """``estate.yaml`` with ``text`` in ``folder``, and the files ``drop`` names (name → content) in ``drop/``."""
    path = folder / "estate.yaml"
    path.write_text(text)
    (folder / "drop").mkdir()
    for name, content in (drop or {}).items():
        (folder / "drop" / name).write_text(content)
    return path


def cli(estate: Path, *args: str, code: int = 0) -> str:
    """``syncfabric ARGS --estate ESTATE``, asserting its exit code; its output."""
    result = runner.invoke(app, [*args, "--estate", str(estate)])
    assert result.exit_code == code, result.output
    return result.output


def store_of(estate: Path) -> Store:
    return open_store(load_estate(estate).store_url)


@dataclass(frozen=True)
class Skeleton:
    estate: Path
    erp: LegacyErp
    url: str
    """The planning platform's base URL."""
    environ: dict[str, str]
    """What the estate reads from the environment: the platform's token and URL."""

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Set ``environ`` and ``SYNCFABRIC_ESTATE`` for the test, so that commands find the estate."""
        for name, value in {**self.environ, "SYNCFABRIC_ESTATE": str(self.estate)}.items():
            monkeypatch.setenv(name, value)


@contextmanager
def walking_skeleton(folder: Path, *, seed: int, item_count: int, token: str = "t0ken",
                     text: str | None = None) -> Iterator[Skeleton]:
    """The walking-skeleton estate (or ``text``, an edited one) as ``folder/estate.yaml``, the legacy ERP's CSV
    exports under ``drop/erp-legacy``, and the planning platform served while the block runs."""
    estate = folder / "estate.yaml"
    if text is None:
        shutil.copy(WALKING_SKELETON, estate)
    else:
        estate.write_text(text)
    erp = LegacyErp(folder / "drop" / "erp-legacy", seed=seed, item_count=item_count)
    erp.export()
    with serve(create_app(token=token)) as url:
        yield Skeleton(estate, erp, url, {"PLANNING_TOKEN": token,
                                          "SYNCFABRIC__SYSTEMS__PLANNING__CONNECTION__BASE_URL": url})
