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
- ``any_store`` (per test): an empty store, once on SQLite and once on PostgreSQL (marked ``postgres``).
- :class:`RecordingTarget`: an in-test target system that keeps what it was sent, fails or refuses on demand.
- The S/4HANA emulator: :func:`sap_emulator` (a module's ``base_url``), ``sap`` (per test: an SAP user's client of
  it, reset first), :func:`sap_connector` (the example estate's OData connector for it) and :func:`odata_rows`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from typer.testing import CliRunner

from syncfabric.cli import app
from syncfabric.config import load_estate
from syncfabric.connectors.base import Capability, Connector, OutboundRecord, WriteOutcome
from syncfabric.connectors.odata.configuration import ODataConfig
from syncfabric.connectors.odata.connector import ODataConnector
from syncfabric.sandbox import sap_odata
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve
from syncfabric.store import Store, open_store

runner = CliRunner()
WALKING_SKELETON = Path(__file__).parents[1] / "examples" / "walking-skeleton" / "estate.yaml"
SAP_EXAMPLE = Path(__file__).parents[1] / "examples" / "sap-s4hana" / "estate.yaml"
SAP_USER, SAP_PASSWORD = "INTEGRATION", "Welcome1!"
SAP_ENV = {"S4_USER": SAP_USER, "S4_PASSWORD": SAP_PASSWORD}
"""What the SAP example estate reads from the environment."""


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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path}/s.db" if request.param == "sqlite" else request.getfixturevalue("postgres_schema_url")
    with open_store(url) as store:
        yield store


class RecordingTarget(Connector):
    """A target system (``planning``) that keeps what it was sent. ``failures`` are raised by the next writes, in turn;
    ``reject`` names keys it refuses, with the reason."""

    kind = "recording"
    capabilities = Capability.WRITE

    def __init__(self, *, failures: Sequence[Exception] = (), reject: dict[str, str] | None = None) -> None:
        super().__init__("planning", None)
        self.failures = list(failures)
        self.reject = reject or {}
        self.attempts = 0
        self.writes: list[tuple[str, list[OutboundRecord]]] = []

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.writes.append((entity, list(records)))
        outcome = WriteOutcome()
        for record in records:
            if record.key in self.reject:
                outcome.rejected[record.key] = self.reject[record.key]
            else:
                outcome.accepted.append(record.key)
        return outcome

    def sent(self) -> list[tuple[str, str, int, dict[str, Any] | None]]:
        return [(entity, record.key, record.version, record.payload)
                for entity, records in self.writes for record in records]


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


def sap_emulator() -> Any:
    """A module's ``base_url`` fixture: the S/4HANA emulator (user :data:`SAP_USER`, 15 rows a page)."""
    return served(lambda: sap_odata.create_app({SAP_USER: SAP_PASSWORD}, page_size=15))


@pytest.fixture
def sap(base_url: str) -> Iterator[httpx.Client]:
    """The module's S/4HANA emulator (:func:`sap_emulator`) and its OData API as an SAP user would use it; reset
    before each test."""
    httpx.post(f"{base_url}/_sandbox/reset").raise_for_status()
    with httpx.Client(base_url=base_url, auth=(SAP_USER, SAP_PASSWORD),
                      headers={"Accept": "application/json"}) as client:
        yield client


def sap_connector(base_url: str, *, max_attempts: int = 3, password: str = SAP_PASSWORD,
                  **overrides: object) -> ODataConnector:
    """The SAP example estate's OData connector, at ``base_url``, retrying quickly, with ``overrides`` of its
    connection settings."""
    connection = msgspec.yaml.decode(SAP_EXAMPLE.read_bytes())["systems"]["s4"]["connection"]
    connection.update(base_url=base_url, retry={"max_attempts": max_attempts, "base_delay": 0.01, "max_delay": 0.2},
                      **overrides)
    return ODataConnector("s4", msgspec.convert(connection, ODataConfig), {"user": SAP_USER, "password": password})


def odata_rows(sap: httpx.Client, path: str, **params: str) -> list[dict]:
    """Every row of an OData v2 collection (``path`` below the emulator's root), following ``__next`` links."""
    rows, url, query = [], f"{sap_odata.ROOT}/{path}", params
    while url:
        body = sap.get(url, params=query).json()["d"]
        rows += body["results"]
        url, query = body.get("__next"), None
    return rows
