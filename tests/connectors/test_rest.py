"""The REST connector against the sandbox paged API, over real HTTP on the loopback interface."""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from tests.fixtures import served

from syncfabric.config import load_estate
from syncfabric.config.loader import validate_estate_file
from syncfabric.connectors.base import Page
from syncfabric.connectors.rest.configuration import RestConfig, RestEndpoint
from syncfabric.connectors.rest.connector import RestConnector
from syncfabric.errors import PermanentError, TransientError
from syncfabric.flows.runtime import Runtime
from syncfabric.sandbox.rest_api import create_app

TOKEN = "portal-token"
T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)

ENDPOINTS = {
    "offset": RestEndpoint(path="/api/v1/offset/parts", records="$.data.records", watermark="updated_at",
                           watermark_param="updated_since", overlap=120),
    "cursor": RestEndpoint(path="/api/v1/cursor/parts", records="items", paging="cursor", limit_param="page_size",
                           watermark="updated_at", watermark_param="updated_since", overlap=120),
    "link": RestEndpoint(path="/api/v1/link/parts", paging="link", limit_param="per_page",
                         watermark="updated_at", watermark_param="updated_since", overlap=120),
}


def stamp(minutes: float) -> str:
    return (T0 + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


base_url = served(lambda: create_app(token=TOKEN, basic=("portal-user", "portal-pass")))


@pytest.fixture
def control(control: httpx.Client) -> httpx.Client:
    """The sandbox control surface; the API is reset and holds 23 parts before each test."""
    put(control, [{"id": f"P{n:03d}", "name": f"part {n}", "updated_at": stamp(n)} for n in range(1, 24)])
    return control


def put(control: httpx.Client, records: list[dict[str, Any]]) -> None:
    control.put("/records/parts", json=records).raise_for_status()


def connector(base_url: str, *, token: str | None = TOKEN, **config: Any) -> RestConnector:
    settings = {"page_size": 5, "endpoints": ENDPOINTS, "max_retry_delay_seconds": 2.0, **config}
    return RestConnector("portal", RestConfig(base_url=base_url, **settings),
                         {"token": token} if token else {})


def ids(pages: list[Page]) -> list[str]:
    return [record.location.removeprefix(record.location.split(":")[0] + ":") for page in pages
            for record in page.records]


ALL = [f"P{n:03d}" for n in range(1, 24)]


@pytest.mark.parametrize("paging", ["offset", "cursor", "link"])
def test_full_read_follows_each_paging_style_and_resumes_after_a_committed_page(
        base_url: str, control: httpx.Client, paging: str) -> None:
    with connector(base_url) as source:
        pages = list(source.read_full(paging))
        ends = [0] if paging == "offset" else []  # offset paging reads until an empty page
        assert [len(page.records) for page in pages] == [5, 5, 5, 5, 3, *ends]
        assert [page.complete for page in pages] == [False] * (4 + len(ends)) + [True]
        assert ids(pages) == ALL and pages[0].records[0].location == f"{paging}:P001"
        assert pages[0].records[0].data["name"] == "part 1"

        resumed = list(source.read_full(paging, pages[1].cursor))
        assert ids(resumed) == ALL[10:] and resumed[-1].complete
        assert ids(list(source.read_full(paging, pages[-1].cursor))) == ALL, "after a complete read, start over"


def test_a_listing_of_exactly_full_pages_ends_with_an_empty_complete_page(
        base_url: str, control: httpx.Client) -> None:
    control.delete("/records/parts/P023").raise_for_status()
    control.delete("/records/parts/P022").raise_for_status()
    control.delete("/records/parts/P021").raise_for_status()
    with connector(base_url) as source:
        pages = list(source.read_full("offset"))
    assert [(len(page.records), page.complete) for page in pages][-2:] == [(5, False), (0, True)]


@pytest.mark.parametrize("paging", ["offset", "cursor", "link"])
def test_net_change_asks_from_the_highest_watermark_in_the_data_less_the_overlap(
        base_url: str, control: httpx.Client, paging: str) -> None:
    with connector(base_url) as source:
        first = list(source.read_changes(paging, None))
        assert ids(first) == ALL
        assert msgspec.json.decode(first[-1].cursor or "")["high"] == stamp(23)
        resumed = list(source.read_changes(paging, first[1].cursor))
        assert ids(resumed) == ALL[10:], "a resumed read continues the same read"

        put(control, [{"id": "P005", "name": "renamed", "updated_at": stamp(60)},
                      {"id": "LATE", "name": "late commit", "updated_at": stamp(22.5)},
                      {"id": "OLD", "name": "too late", "updated_at": stamp(10)}])
        second = list(source.read_changes(paging, first[-1].cursor))
        assert ids(second) == ["P021", "P022", "LATE", "P023", "P005"], "from 08:21 (08:23 less 120 s) on"
        assert msgspec.json.decode(second[-1].cursor or "")["high"] == stamp(60)
        assert not any(page.complete for page in second)


@pytest.mark.parametrize("paging", ["offset", "cursor", "link"])
def test_an_api_that_serves_fewer_records_than_asked_loses_none(
        base_url: str, control: httpx.Client, paging: str) -> None:
    control.post("/page-cap", params={"cap": 3}).raise_for_status()
    with connector(base_url) as source:
        pages = list(source.read_full(paging))
    assert ids(pages) == ALL and pages[-1].complete


def test_429_and_5xx_are_retried_honouring_retry_after(base_url: str, control: httpx.Client) -> None:
    control.post("/faults", json={"fail_next_n": 2, "fail_status": 429, "retry_after": 0.4}).raise_for_status()
    with connector(base_url) as source:
        began = time.monotonic()
        pages = list(source.read_full("offset"))
        waited = time.monotonic() - began
    assert ids(pages) == ALL
    assert control.get("/faults").json()["injected"] == 2
    assert waited >= 0.8, "waited Retry-After twice"

    control.post("/faults", json={"fail_next_n": 1, "fail_status": 502, "retry_after": None}).raise_for_status()
    with connector(base_url) as source:
        assert ids(list(source.read_full("cursor"))) == ALL
    assert control.get("/faults").json()["injected"] == 3


def test_retries_stop_after_max_attempts_with_a_transient_error(base_url: str, control: httpx.Client) -> None:
    control.post("/faults", json={"outage": True, "retry_after": 0.1}).raise_for_status()
    with connector(base_url, max_attempts=3) as source, pytest.raises(TransientError, match="503") as failed:
        list(source.read_full("link"))
    assert failed.value.retry_after == pytest.approx(0.1)
    assert failed.value.system == "portal" and failed.value.entity == "link"
    assert control.get("/faults").json()["injected"] == 3


def test_errors_are_translated_once(base_url: str, control: httpx.Client) -> None:
    with connector(base_url, token="wrong") as source, pytest.raises(PermanentError, match="401"):
        list(source.read_full("offset"))
    with connector(base_url) as source:
        with pytest.raises(PermanentError, match="404"):
            list(source.read_full("/api/v1/offset/nothing"))
        wrong_path = {"offset": RestEndpoint(path="/api/v1/offset/parts", records="$.data.rows")}
        with connector(base_url, endpoints=wrong_path) as misread, pytest.raises(
                PermanentError, match=r"expected a list of records at \$\.data\.rows, got NoneType"):
            list(misread.read_full("offset"))
        with pytest.raises(PermanentError, match="no watermark"):
            list(source.read_changes("/api/v1/offset/parts", None))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with connector(f"http://127.0.0.1:{port}", max_attempts=1) as unreachable, pytest.raises(
            TransientError, match="unreachable"):
        list(unreachable.read_full("offset"))


def test_basic_authentication_from_credentials(base_url: str, control: httpx.Client) -> None:
    source = RestConnector("portal", RestConfig(base_url=base_url, username="portal-user", endpoints=ENDPOINTS),
                           {"password": "portal-pass"})
    with source:
        assert len(ids(list(source.read_full("offset")))) == 23
    with pytest.raises(PermanentError, match="no password"):
        RestConnector("portal", RestConfig(base_url=base_url, username="portal-user")).open()


def test_a_record_that_is_not_an_object_is_rejected_with_its_json_path(
        base_url: str, control: httpx.Client) -> None:
    control.post("/junk/parts", json=[42]).raise_for_status()
    with connector(base_url, page_size=10) as source:
        pages = list(source.read_full("offset"))
    assert ids(pages) == ALL
    problems = [problem for page in pages for problem in page.problems]
    assert [(p.location, p.raw) for p in problems] == [("offset: $.data.records[3]", "42")]
    assert "expected a JSON object, got int @ $.data.records[3] (GET http://127.0.0.1" in problems[0].reason


ESTATE = """\
version: 1
store: sqlite:///sf.db
systems:
  portal:
    kind: rest
    connection:
      base_url: {base_url}
      page_size: 7
      endpoints:
        parts:
          path: /api/v1/cursor/parts
          records: items
          paging: cursor
          limit_param: page_size
          watermark: updated_at
          watermark_param: updated_since
          overlap: 60
    credentials:
      token: {{env: PORTAL_TOKEN}}
mappings:
  portal-items:
    system: portal
    entity: item
    fields: {{item_id: id, description: name, base_unit: {{const: EA}}}}
flows:
  parts-full: {{direction: inbound, system: portal, entities: [item], mode: full, source: parts,
               mapping: portal-items}}
  parts-changes: {{direction: inbound, system: portal, entities: [item], source: parts, mapping: portal-items}}
"""


def test_inbound_flows_from_an_estate_file(base_url: str, control: httpx.Client, tmp_path: Path) -> None:
    (tmp_path / "estate.yaml").write_text(ESTATE.format(base_url=base_url))
    loaded = load_estate(tmp_path / "estate.yaml", environ={"PORTAL_TOKEN": TOKEN})
    with Runtime(loaded) as runtime:
        full = runtime.run_flow("parts-full")
        assert (full.inserted, full.records_in) == (23, 23)
        assert runtime.run_flow("parts-changes").inserted == 0
        put(control, [{"id": "P002", "name": "renamed", "updated_at": stamp(90)},
                      {"id": "NEW", "name": "new part", "updated_at": stamp(91)}])
        changes = runtime.run_flow("parts-changes")
        assert (changes.inserted, changes.updated) == (1, 1)
        control.delete("/records/parts/P003").raise_for_status()
        assert runtime.run_flow("parts-full").deleted == 1
        row = runtime.store.get("item", "P002")
        assert row is not None and msgspec.json.decode(row.payload or b"{}")["description"] == "renamed"


def test_validate_reports_a_source_that_is_no_endpoint(tmp_path: Path) -> None:
    (tmp_path / "estate.yaml").write_text(ESTATE.format(base_url="http://127.0.0.1:9").replace(
        "entities: [item], mode: full, source: parts", "entities: [item], mode: full, source: partz"))
    [problem] = validate_estate_file(tmp_path / "estate.yaml", environ={})
    assert "source 'partz' is neither an endpoint of the system (endpoints: parts) nor a path" in problem
    assert problem.endswith("@ $.flows.parts-full.source")
