"""The REST connector writes target-shaped records to the sandbox API over real HTTP: one PUT per record by its id,
per-record outcomes, retries on 429, deletions; and an outbound flow with an outbound mapping feeds it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.fixtures import served
from typer.testing import CliRunner

from syncfabric.cli import app
from syncfabric.config import load_estate
from syncfabric.connectors.base import OutboundRecord
from syncfabric.connectors.rest.configuration import RestConfig, RestTarget
from syncfabric.connectors.rest.connector import RestConnector
from syncfabric.errors import PermanentError
from syncfabric.sandbox.rest_api import create_app
from syncfabric.store import open_store

TOKEN = "portal-token"


base_url = served(lambda: create_app(token=TOKEN))


def portal(base_url: str, token: str = TOKEN) -> RestConnector:
    targets = {"item": RestTarget(path="/api/v1/records/parts", key="part_no")}
    return RestConnector("portal", RestConfig(base_url=base_url, targets=targets, max_retry_delay_seconds=1.0),
                         {"token": token})


def held(base_url: str) -> dict[str, dict]:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        answer = client.get("/api/v1/offset/parts", params={"limit": 1000})
        if answer.status_code == 404:
            return {}
        return {row["id"]: {k: v for k, v in row.items() if k not in ("id", "updated_at")}
                for row in answer.json()["data"]["records"]}


def test_each_record_is_put_by_its_id_and_a_refused_one_is_rejected_with_the_apis_reason(
        base_url: str, control: httpx.Client) -> None:
    control.post("/required/parts", json=["name"]).raise_for_status()
    control.post("/faults", json={"fail_next_n": 2, "fail_status": 429, "retry_after": 0.1}).raise_for_status()
    with portal(base_url) as target:
        outcome = target.write("item", [
            OutboundRecord("A", 1, {"part_no": "P-A", "name": "bolt"}),
            OutboundRecord("B", 1, {"part_no": "P-B"}),  # the API requires a name
            OutboundRecord("C", 1, {"name": "nut"}),  # no id to put it at
            OutboundRecord("D", 1, {"part_no": "P D-1", "name": "washer"}),
        ])
        assert outcome.accepted == ["A", "D"]
        assert outcome.rejected["B"].startswith("REST API answered 422 Unprocessable Entity: missing field 'name' "
                                                "in parts P-B")
        assert outcome.rejected["C"] == "no value for key field 'part_no' of /api/v1/records/parts"
        assert held(base_url) == {"P-A": {"part_no": "P-A", "name": "bolt"},
                                  "P D-1": {"part_no": "P D-1", "name": "washer"}}
        assert control.get("/faults").json()["injected"] == 2  # the two 429s were retried

        again = target.write("item", [OutboundRecord("A", 1, {"part_no": "P-A", "name": "bolt"}),
                                      OutboundRecord("D", 2, None, target_key={"part_no": "P D-1"}),
                                      OutboundRecord("E", 1, None, target_key={"part_no": "P-E"})])
        assert again.accepted == ["A", "D", "E"]  # deleting what is not there is done
        assert held(base_url) == {"P-A": {"part_no": "P-A", "name": "bolt"}}


def test_wrong_credentials_refuse_the_whole_batch(base_url: str, control: httpx.Client) -> None:
    with portal(base_url, token="wrong") as target, pytest.raises(PermanentError, match="401"):
        target.write("item", [OutboundRecord("A", 1, {"part_no": "P-A", "name": "bolt"})])


ESTATE = """\
version: 1
store: sqlite:///.syncfabric/syncfabric.db
systems:
  erp: {kind: files, connection: {folder: drop}}
  portal:
    kind: rest
    connection: {base_url: "BASE", targets: {item: {path: /api/v1/records/parts, key: part_no}}}
    credentials: {token: {env: PORTAL_TOKEN}}
code_maps:
  part-status: {values: {A: active, B: blocked, X: obsolete}}
mappings:
  erp-items:
    system: erp
    entity: item
    fields: {item_id: MATNR, description: MAKTX, base_unit: MEINS, status: {from: STATUS, code_map: part-status}}
  items-to-portal:
    system: portal
    entity: item
    direction: outbound
    fields:
      part_no: {concat: [{const: "I"}, item_id]}
      name: description
      uom: base_unit
      state: {from: status, code_map: part-status}
flows:
  items-in: {direction: inbound, system: erp, entities: [item], mode: full, source: "items_*.csv",
             mapping: erp-items}
  items-out: {direction: outbound, system: portal, entities: [item], mode: changes, mapping: items-to-portal}
"""


def test_an_outbound_flow_maps_store_records_into_the_apis_shape(
        base_url: str, control: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_TOKEN", TOKEN)
    estate = tmp_path / "estate.yaml"
    estate.write_text(ESTATE.replace("BASE", base_url))
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "items_1.csv").write_text(
        "MATNR,MAKTX,MEINS,STATUS\n100200,bolt M8,EA,A\n100300,nut M8,EA,B\n")
    runner = CliRunner()
    for flow in ("items-in", "items-out"):
        result = runner.invoke(app, ["sync", flow, "--estate", str(estate)])
        assert result.exit_code == 0, result.output

    assert held(base_url) == {
        "I100200": {"part_no": "I100200", "name": "bolt M8", "uom": "EA", "state": "A"},
        "I100300": {"part_no": "I100300", "name": "nut M8", "uom": "EA", "state": "B"},
    }

    # The next snapshot no longer has 100300: its deletion reaches the API at the id the mapping gives the key.
    (tmp_path / "drop" / "items_2.csv").write_text("MATNR,MAKTX,MEINS,STATUS\n100200,bolt M8,EA,A\n")
    for flow in ("items-in", "items-out"):
        result = runner.invoke(app, ["sync", flow, "--estate", str(estate)])
        assert result.exit_code == 0, result.output
    assert set(held(base_url)) == {"I100200"}
    with open_store(load_estate(estate).store_url) as store:
        assert store.dead_letters(flow="items-out") == []
