"""Mapping impact (``mapping diff``): re-mapping the raw records kept in the store with the estate as now edited."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from syncfabric.config import load_estate
from syncfabric.errors import ConfigError
from syncfabric.flows.impact import ABSENT, FieldChange, field_changes, impact_tables, mapping_impact
from syncfabric.flows.runtime import Runtime
from syncfabric.store import IncomingRecord, Lineage, open_store

ESTATE = """\
version: 1
store: sqlite:///s.db
systems:
  erp: {kind: files, connection: {folder: drop}}
code_maps:
  status: {values: {A: active, B: blocked}}
mappings:
  items:
    system: erp
    entity: item
    fields:
      item_id: {from: NR, xref: {entity: item, derive: {strip_prefix: "X-"}}}
      description: TEXT
      base_unit: UOM
      status: {from: ST, code_map: status}
flows:
  items-in: {direction: inbound, system: erp, entities: [item], source: "items_*.csv", mapping: items}
"""

ITEMS = "NR,TEXT,UOM,ST\nX-1,bolt,EA,A\nX-2,nut,EA,B\nX-3,washer,KG,A\nX-4,screw,EA,Q\n"


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "items_1.csv").write_text(ITEMS)
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE)
    with Runtime(load_estate(path)) as runtime:
        result = runtime.run_flow("items-in")
    assert result.inserted == 3 and result.quarantined == 1
    return path


def impact_of(path: Path, text: str, **options: object):
    path.write_text(text)
    loaded = load_estate(path)
    with open_store(loaded.store_url) as store:
        return mapping_impact(store, loaded.estate, **options)  # type: ignore[arg-type]


def test_an_unchanged_estate_changes_nothing(estate: Path) -> None:
    (flow,) = impact_of(estate, ESTATE).flows
    assert (flow.checked, flow.unchanged, flow.changed, flow.rejected) == (3, 3, 0, 0)
    assert (flow.quarantined, flow.accepted) == (1, 0)
    assert flow.stored_versions == {"items@1+status@1": 3} and flow.version == "items@1+status@1"
    assert flow.samples == [] and not flow.version_not_raised


def test_changed_fields_new_keys_rejections_and_acceptances_are_reported(estate: Path) -> None:
    edited = (ESTATE.replace("status: {values: {A: active, B: blocked}}",
                             "status: {version: 2, values: {A: active, B: obsolete, Q: blocked}}")
              .replace("description: TEXT", "description: {concat: [TEXT, UOM], sep: ' / '}")
              .replace("version: 1\nstore", "version: 1\nrules: {item: [{kind: required, field: unit_cost}]}\nstore"))
    # Every stored item now lacks unit_cost: all are rejected, with that reason, before anything else is compared.
    (flow,) = impact_of(estate, edited).flows
    assert (flow.checked, flow.rejected, flow.changed) == (3, 3, 0)
    assert flow.samples[0].kind == "rejected" and flow.samples[0].key == "1"
    assert [r.split(" @ ")[1] for r in flow.samples[0].reasons] == ["$.unit_cost (system erp, key 1)"]

    without_rule = edited.replace("rules: {item: [{kind: required, field: unit_cost}]}\n", "")
    (flow,) = impact_of(estate, without_rule, samples=2).flows
    assert (flow.checked, flow.unchanged, flow.changed, flow.rejected) == (3, 0, 3, 0)
    assert (flow.quarantined, flow.accepted) == (1, 1)
    assert len(flow.samples) == 2  # bounded; the counts are not
    first = flow.samples[0]
    assert (first.kind, first.key) == ("changed", "1")
    assert first.changes == [FieldChange("$.description", "bolt", "bolt / EA")]
    assert flow.samples[1].changes == [FieldChange("$.description", "nut", "nut / EA"),
                                       FieldChange("$.status", "blocked", "obsolete")]
    (flow,) = impact_of(estate, without_rule).flows
    accepted = flow.samples[-1]
    assert (accepted.kind, accepted.key, accepted.quarantine_id) == ("accepted", "4", 1)
    assert FieldChange("$.status", ABSENT, "blocked") in accepted.changes
    assert flow.stored_versions == {"items@1+status@1": 3} and flow.version == "items@1+status@2"
    assert not flow.version_not_raised

    with open_store(load_estate(estate).store_url) as store:  # a dry run
        assert {msgspec.json.decode(r.payload or b"")["description"] for r in store.current("item")} == {
            "bolt", "nut", "washer"}
        assert len(store.quarantine()) == 1


def test_a_new_key_and_a_mapping_changed_without_its_version(estate: Path) -> None:
    edited = ESTATE.replace('derive: {strip_prefix: "X-"}', 'derive: {strip_prefix: "X-", pad: {width: 3}}')
    (flow,) = impact_of(estate, edited, flows=["items-in"]).flows
    # Each new key would conflict with the cross-reference link of the stored one: never merged, rejected.
    assert flow.rejected == 3 and flow.version_not_raised and flow.same_version_changed == 3
    assert flow.samples[0].reasons == ["xref conflict: erp item 'X-1' is linked to canonical key '1', not '001'"]
    summary, versions, samples, notes = impact_tables(impact_of(estate, edited))
    assert versions == ["items-in: mapping now items@1+status@1; stored by items@1+status@1 (3)"]
    assert samples.row_count >= 3 and summary.row_count == 1
    assert any("raise its version" in note for note in notes)

    without_xref = ESTATE.replace('{from: NR, xref: {entity: item, derive: {strip_prefix: "X-"}}}',
                                  '{from: NR, split: {sep: "-", index: 1}, pad: {width: 3}}')
    (flow,) = impact_of(estate, without_xref).flows
    assert flow.changed == 3
    sample = flow.samples[0]
    assert (sample.key, sample.new_key) == ("1", "001")
    assert FieldChange("$.item_id", "1", "001") in sample.changes


def test_records_without_a_raw_record_are_counted_not_checked(estate: Path) -> None:
    loaded = load_estate(estate)
    with open_store(loaded.store_url) as store, store.transaction() as tx:
        tx.apply("item", [IncomingRecord("9", b'{"item_id":"9","base_unit":"EA"}', Lineage("erp", "", "", "old"))])
    impact = impact_of(estate, ESTATE)
    assert impact.unchecked == {"item": 1} and impact.flows[0].checked == 3
    assert any("1 stored item record(s) have no raw record kept" in n for n in impact_tables(impact)[3])


def test_only_inbound_flows_can_be_diffed(estate: Path) -> None:
    with pytest.raises(ConfigError, match="'nope' is not an inbound flow"):
        impact_of(estate, ESTATE, flows=["nope"])


def test_field_changes_of_nested_records_and_lists() -> None:
    old = b'{"a":{"b":1,"c":[1,2]},"d":"x"}'
    new = b'{"a":{"b":2,"c":[1]},"e":null}'
    assert field_changes(old, new) == [
        FieldChange("$.a.b", 1, 2), FieldChange("$.e", ABSENT, None),
        FieldChange("$.a.c[1]", 2, ABSENT), FieldChange("$.d", "x", ABSENT)]
    assert field_changes(None, new) == [FieldChange("$.a.b", ABSENT, 2), FieldChange("$.a.c[0]", ABSENT, 1)]


def test_a_flow_that_keeps_no_raw_records_is_not_checked(tmp_path: Path) -> None:
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "items_1.csv").write_text(ITEMS)
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE.replace("mapping: items}", "mapping: items, keep_raw: false}"))
    with Runtime(load_estate(path)) as runtime:
        assert runtime.run_flow("items-in").inserted == 3
        assert list(runtime.store.sources("item")) == []
    impact = impact_of(path, path.read_text())
    assert impact.unchecked == {"item": 3} and impact.flows[0].checked == 0
    assert impact.flows[0].quarantined == 1  # quarantine keeps its raw records regardless
