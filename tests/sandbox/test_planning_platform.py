"""The simulated planning platform over real HTTP on the loopback interface."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve
from tests.fixtures import served

TOKEN = "s3cret"


base_url = served(lambda: create_app(token=TOKEN))


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        client.post("/api/_sandbox/reset").raise_for_status()
        yield client


def send(api: httpx.Client, method: str, entity: str, records: Any, app: str = "input") -> httpx.Response:
    return api.request(method, f"/api/{app}/{entity}/", json=records)


def outcomes(response: httpx.Response) -> list[tuple[str, str]]:
    return [(r["status"], r.get("effect") or r["error"]) for r in response.json()["results"]]


def records(api: httpx.Client, entity: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/api/input/{entity}/", params=params)
    response.raise_for_status()
    return response.json()


def received(api: httpx.Client) -> dict[str, Any]:
    return api.get("/api/_sandbox/received").json()


def seed(api: httpx.Client) -> None:
    send(api, "PUT", "location", [{"name": "P1"}, {"name": "P2"}]).raise_for_status()
    send(api, "PUT", "item", [{"name": "A", "uom": "EA"}, {"name": "B", "uom": "KG"}]).raise_for_status()


def test_bulk_upsert_then_list_in_key_order_with_paging(api: httpx.Client) -> None:
    response = send(api, "PUT", "item", [{"name": n, "cost": i} for i, n in enumerate("CAB")])
    assert response.status_code == 200
    assert outcomes(response) == [("ok", "created")] * 3
    assert [r["name"] for r in records(api, "item")] == ["A", "B", "C"]
    page = api.get("/api/input/item/", params={"limit": 2, "offset": 1})
    assert [r["name"] for r in page.json()] == ["B", "C"]
    assert page.headers["X-Total-Count"] == "3"
    assert records(api, "item", name="C")[0]["cost"] == 0.0
    assert [r["name"] for r in records(api, "item", name__in="A,C")] == ["A", "C"]
    send(api, "PUT", "item", [{"name": "XB1"}]).raise_for_status()
    assert [r["name"] for r in records(api, "item", name__contains="B")] == ["B", "XB1"]


def test_put_merges_fields_so_inventory_and_safety_stock_share_one_buffer(api: httpx.Client) -> None:
    seed(api)
    send(api, "PUT", "buffer", [{"item": "A", "location": "P1", "minimum": "5"}]).raise_for_status()
    send(api, "PUT", "buffer", [{"item": "A", "location": "P1", "batch": "", "onhand": 12}]).raise_for_status()
    [buffer] = records(api, "buffer")
    assert (buffer["item"], buffer["location"], buffer["batch"]) == ("A", "P1", "")
    assert (buffer["minimum"], buffer["onhand"]) == (5.0, 12.0)


def test_an_identical_write_is_unchanged_and_keeps_lastmodified(api: httpx.Client) -> None:
    seed(api)
    before = records(api, "item", name="A")[0]["lastmodified"]
    assert outcomes(send(api, "PUT", "item", [{"name": "A", "uom": "EA"}])) == [("ok", "unchanged")]
    assert records(api, "item", name="A")[0]["lastmodified"] == before


def test_a_bad_record_is_rejected_alone(api: httpx.Client) -> None:
    seed(api)
    response = send(api, "PUT", "buffer", [
        {"item": "A", "location": "P1", "onhand": 1},
        {"item": "NOPE", "location": "P1", "onhand": 1},
        {"item": "B", "location": "P2", "onhand": "lots"},
        {"item": "B", "location": "P2", "colour": "red"},
        {"location": "P2"},
        "not a record",
    ])
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["ok", "error", "error", "error", "error", "error"]
    assert results[1]["key"] == {"item": "NOPE", "location": "P1", "batch": ""}
    assert "unknown item 'NOPE'" in results[1]["error"]
    assert "onhand must be a number" in results[2]["error"]
    assert "unknown field(s) for buffer: colour" in results[3]["error"]
    assert results[4]["error"] == "required: item"
    assert results[5]["key"] is None
    assert len(records(api, "buffer")) == 1
    assert received(api)["effects"]["buffer"] == {"created": 1, "rejected": 5}


def test_required_fields_choices_and_durations(api: httpx.Client) -> None:
    seed(api)
    response = send(api, "PUT", "demand", [
        {"name": "SO1", "item": "A", "location": "P1", "customer": "C1", "due": "2026-03-01T00:00:00",
         "quantity": 3, "status": "open"},
        {"name": "SO2", "item": "A", "location": "P1", "customer": "C1", "quantity": 3},
        {"name": "SO3", "item": "A", "location": "P1", "customer": "C1", "due": "2026-03-01", "quantity": 3,
         "status": "maybe"},
    ])
    assert [r["status"] for r in response.json()["results"]] == ["ok", "error", "error"]
    assert response.json()["results"][1]["error"] == "required: due"
    assert "status must be one of" in response.json()["results"][2]["error"]
    send(api, "PUT", "itemsupplier", [
        {"item": "A", "supplier": "S1", "leadtime": 86400 * 3},
        {"item": "B", "supplier": "S1", "location": "P1", "leadtime": "1 12:00:00"},
    ]).raise_for_status()
    assert [(r["location"], r["leadtime"]) for r in records(api, "itemsupplier")] == [
        ("", "3 00:00:00"), ("P1", "1 12:00:00"),
    ]


def test_post_creates_only_and_patch_updates_only(api: httpx.Client) -> None:
    seed(api)
    assert outcomes(send(api, "POST", "item", [{"name": "A"}, {"name": "N"}])) == [
        ("error", "item A already exists"), ("ok", "created"),
    ]
    assert outcomes(send(api, "PATCH", "item", [{"name": "A", "cost": 2}, {"name": "Z", "cost": 1}])) == [
        ("ok", "updated"), ("error", "item Z not found"),
    ]
    assert records(api, "item", name="A")[0]["uom"] == "EA"


def test_bearer_token_is_required(api: httpx.Client, base_url: str) -> None:
    anonymous = httpx.get(f"{base_url}/api/input/item/")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    wrong = httpx.put(f"{base_url}/api/input/item/", json=[{"name": "A"}], headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    assert received(api)["write_requests"] == 0
    assert httpx.get(f"{base_url}/api/_sandbox/received").status_code == 200


def test_resending_the_same_version_is_a_no_op(api: httpx.Client) -> None:
    batch = [{"name": "A", "cost": 1, "_version": 3, "_stream": "item"}]
    assert outcomes(send(api, "PUT", "item", batch)) == [("ok", "created")]
    first = records(api, "item")
    assert outcomes(send(api, "PUT", "item", batch)) == [("ok", "duplicate")]
    assert records(api, "item") == first
    assert first[0]["_versions"] == {"item": 3}
    counts = received(api)
    assert counts["write_requests"] == 2
    assert counts["records"] == {"item": 1}
    assert counts["effects"]["item"] == {"created": 1, "duplicate": 1}


def test_an_older_version_never_overwrites_a_newer_one(api: httpx.Client) -> None:
    seed(api)
    send(api, "PUT", "item", [{"name": "A", "cost": 5, "_version": 7, "_stream": "item"}]).raise_for_status()
    assert outcomes(send(api, "PUT", "item", [{"name": "A", "cost": 4, "_version": 6, "_stream": "item"}])) == [
        ("ok", "stale"),
    ]
    assert records(api, "item", name="A")[0]["cost"] == 5.0
    # streams keep their own order: on-hand version 1 lands although safety stock is at version 9
    send(api, "PUT", "buffer", [{"item": "A", "location": "P1", "minimum": 2, "_version": 9,
                                 "_stream": "item_location"}]).raise_for_status()
    assert outcomes(send(api, "PUT", "buffer", [{"item": "A", "location": "P1", "onhand": 8, "_version": 1,
                                                 "_stream": "inventory_balance"}])) == [("ok", "updated")]
    [buffer] = records(api, "buffer")
    assert buffer["_versions"] == {"item_location": 9, "inventory_balance": 1}
    bad = send(api, "PUT", "item", [{"name": "A", "_version": -1}, {"name": "A", "_version": True}])
    assert [r["status"] for r in bad.json()["results"]] == ["error", "error"]


def test_delete_by_key_and_tombstones(api: httpx.Client) -> None:
    seed(api)
    send(api, "PUT", "item", [{"name": "X", "_version": 2, "_stream": "item"}]).raise_for_status()
    response = send(api, "DELETE", "item", [{"name": "X", "_version": 3, "_stream": "item"}, {"name": "never"}])
    assert outcomes(response) == [("ok", "deleted"), ("ok", "absent")]
    assert [r["name"] for r in records(api, "item")] == ["A", "B"]
    # a late older upsert does not bring it back; a newer one does
    assert outcomes(send(api, "PUT", "item", [{"name": "X", "_version": 2, "_stream": "item"}])) == [
        ("ok", "stale"),
    ]
    assert outcomes(send(api, "PUT", "item", [{"name": "X", "_version": 4, "_stream": "item"}])) == [
        ("ok", "created"),
    ]
    assert outcomes(send(api, "DELETE", "item", [{"name": "A", "cost": 3}]))[0][0] == "error"


def test_deleting_a_master_cascades_as_in_frepple(api: httpx.Client) -> None:
    seed(api)
    send(api, "PUT", "location", [{"name": "EU"}, {"name": "DE", "owner": "EU"}]).raise_for_status()
    send(api, "PUT", "buffer", [{"item": "A", "location": "P1", "onhand": 1},
                                {"item": "B", "location": "P1", "onhand": 1}]).raise_for_status()
    send(api, "DELETE", "item", [{"name": "A"}]).raise_for_status()
    assert [r["item"] for r in records(api, "buffer")] == ["B"]
    send(api, "DELETE", "location", [{"name": "EU"}]).raise_for_status()
    assert records(api, "location", name="DE")[0]["owner"] is None
    assert received(api)["effects"]["buffer"]["cascaded"] == 1


def test_changes_since_a_timestamp(api: httpx.Client) -> None:
    seed(api)
    time.sleep(0.01)
    since = dt.datetime.now(dt.UTC).isoformat()
    send(api, "PUT", "item", [{"name": "B", "cost": 9}]).raise_for_status()
    assert [r["name"] for r in records(api, "item", lastmodified__gte=since)] == ["B"]
    assert api.get("/api/input/item/", params={"lastmodified__gte": "yesterday"}).status_code == 400
    assert api.get("/api/input/item/", params={"colour": "red"}).status_code == 400


def test_forecast_lives_under_the_forecast_app_and_unknown_entities_are_404(api: httpx.Client) -> None:
    seed(api)
    send(api, "PUT", "forecast", [{"name": "A @ P1", "item": "A", "location": "P1"}], app="forecast").raise_for_status()
    assert api.get("/api/forecast/forecast/").json()[0]["name"] == "A @ P1"
    assert api.get("/api/input/nothing/").status_code == 404
    assert api.get("/api/forecast/item/").status_code == 404
    assert api.put("/api/input/item/", content=b"{not json").status_code == 400
    assert api.put("/api/input/item/", json=42).status_code == 400


def test_faults_fail_the_next_requests_then_recover(api: httpx.Client) -> None:
    api.post("/api/_sandbox/faults", json={"fail_next_n": 2, "fail_status": 429, "retry_after": 7}).raise_for_status()
    for _ in range(2):
        failed = api.get("/api/input/item/")
        assert failed.status_code == 429
        assert failed.headers["Retry-After"] == "7"
    assert api.get("/api/input/item/").status_code == 200
    assert received(api)["faults_injected"] == 2


def test_outage_and_latency(api: httpx.Client) -> None:
    api.post("/api/_sandbox/faults", json={"outage": True}).raise_for_status()
    assert send(api, "PUT", "item", [{"name": "A"}]).status_code == 503
    assert received(api)["write_requests"] == 0
    api.post("/api/_sandbox/faults", json={"outage": False, "latency_ms": 150}).raise_for_status()
    started = time.monotonic()
    assert api.get("/api/input/item/").status_code == 200
    assert time.monotonic() - started >= 0.15
    assert api.get("/api/_sandbox/faults").json()["latency_ms"] == 150
    api.post("/api/_sandbox/reset").raise_for_status()
    assert api.get("/api/_sandbox/faults").json()["latency_ms"] == 0
    assert api.post("/api/_sandbox/faults", json={"fail_status": 200}).status_code == 422


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "planning.json"
    with serve(create_app(state_file=state_file)) as url:
        httpx.put(f"{url}/api/input/location/", json=[{"name": "P1", "_version": 1, "_stream": "location"}])
        httpx.put(f"{url}/api/input/item/", json=[{"name": "A"}])
        httpx.request("DELETE", f"{url}/api/input/item/", json=[{"name": "A", "_version": 5, "_stream": "item"}])
    with serve(create_app(state_file=state_file)) as url:
        assert [r["name"] for r in httpx.get(f"{url}/api/input/location/").json()] == ["P1"]
        stale = httpx.put(f"{url}/api/input/item/", json=[{"name": "A", "_version": 4, "_stream": "item"}])
        assert stale.json()["results"][0]["effect"] == "stale"
        assert httpx.get(f"{url}/api/_sandbox/received").json()["write_requests"] == 4
