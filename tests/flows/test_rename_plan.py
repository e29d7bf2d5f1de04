"""The pre-compiled plan for column-rename mappings gives exactly what the general mapping path gives: the same
records, the same problems, and, through a whole inbound flow, the same store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from syncfabric.config.schema import Mapping
from syncfabric.connectors.files.configuration import FilesConfig
from syncfabric.connectors.files.connector import FilesConnector
from syncfabric.errors import RecordError
from syncfabric.flows import rename_plan
from syncfabric.flows.inbound import run_inbound
from syncfabric.mapping import FieldMap
from syncfabric.store import Store, open_store

RENAMES = Mapping(system="erp", entity="item_location", fields={
    "item_id": "ITEM_NO", "location_id": "SITE", "make_or_buy": "PROCUREMENT", "lead_time_days": "LEAD_TIME_DAYS",
    "safety_stock": "SAFETY_STOCK", "planner": "PLANNER"})

ROWS: list[dict[str, Any]] = [
    {"ITEM_NO": "I1", "SITE": "P100", "PROCUREMENT": "make", "LEAD_TIME_DAYS": "5", "SAFETY_STOCK": "10",
     "PLANNER": "ALEE"},
    {"ITEM_NO": " I2 ", "SITE": "P100 ", "PROCUREMENT": "", "LEAD_TIME_DAYS": " ", "SAFETY_STOCK": "1.50",
     "PLANNER": "", "EXTRA": "ignored"},
    {"ITEM_NO": "I3", "SITE": "P200", "LEAD_TIME_DAYS": 7, "SAFETY_STOCK": 0},  # JSON values, columns absent
    {"ITEM_NO": "I4", "SITE": "P200", "LEAD_TIME_DAYS": "abc"},
    {"ITEM_NO": "I5", "SITE": "P200", "SAFETY_STOCK": "-3"},
    {"ITEM_NO": "I|6", "SITE": "P200"},
    {"ITEM_NO": "I7", "SITE": "P200", "PROCUREMENT": "borrow"},
    {"SITE": "P200"},
    {"ITEM_NO": "", "SITE": None},
    {"ITEM_NO": "I8", "SITE": "P300", "SAFETY_STOCK": "NaN"},
    {"ITEM_NO": "I9", "SITE": "P300", "PLANNER": 12},
]


def outcome(map_row: Any, row: dict[str, Any]) -> Any:
    try:
        record, claims = map_row(row)
    except RecordError as exc:
        return "error", exc.key, [str(problem) for problem in exc.problems]
    return "record", record, claims


@pytest.mark.parametrize("row", ROWS, ids=range(len(ROWS)))
def test_the_plan_maps_every_row_as_the_general_path_does(row: dict[str, Any]) -> None:
    field_map = FieldMap("items", RENAMES)
    plan = rename_plan.mapper(field_map)
    assert plan != field_map.map  # a rename mapping gets the plan
    assert outcome(plan, row) == outcome(field_map.map, row)


def test_the_rows_above_cover_both_records_and_problems() -> None:
    field_map = FieldMap("items", RENAMES)
    kinds = [outcome(field_map.map, row)[0] for row in ROWS]
    assert kinds.count("record") >= 3 and kinds.count("error") >= 5


@pytest.mark.parametrize("fields", [
    {"item_id": "ITEM_NO", "location_id": {"const": "P100"}},
    {"item_id": "ITEM_NO", "location_id": {"from": "SITE", "default": "P100"}},
    {"item_id": "header.item", "location_id": "SITE"},
])
def test_other_mappings_take_the_general_path(fields: dict[str, Any]) -> None:
    field_map = FieldMap("items", Mapping(system="erp", entity="item_location", fields=fields))
    assert rename_plan.mapper(field_map) == field_map.map


def page_outcome(rows: list[dict[str, Any]]) -> Any:
    field_map = FieldMap("items", RENAMES)
    plan = rename_plan.page_mapper(field_map)
    assert plan is not None
    return plan(rows)


def test_a_page_of_text_rows_that_all_map_is_mapped_at_once_as_row_by_row() -> None:
    field_map = FieldMap("items", RENAMES)
    rows = [ROWS[0], ROWS[1], {"ITEM_NO": "I1", "SITE": "P200", "PROCUREMENT": " buy", "LEAD_TIME_DAYS": "0",
                               "SAFETY_STOCK": "1e3", "PLANNER": "B"}, ROWS[0]]
    mapped = page_outcome(rows)
    assert mapped is not None
    records = [field_map.map(row)[0] for row in rows]
    assert mapped == ([record.key for record in records], [msgspec.json.encode(record) for record in records])
    assert page_outcome([]) == ([], [])


def test_a_page_with_columns_left_out_or_null_is_mapped_at_once_as_row_by_row() -> None:
    """Events leave their optional fields out: such a page still maps at once, a missing or null column left out
    of the record as row by row leaves it out."""
    field_map = FieldMap("items", RENAMES)
    rows = [{"ITEM_NO": "I1", "SITE": "P100"}, {"ITEM_NO": "I2", "SITE": "P100", "PLANNER": None},
            {"ITEM_NO": " I3", "SITE": "P200", "PROCUREMENT": "buy", "SAFETY_STOCK": "2"}]
    records = [field_map.map(row)[0] for row in rows]
    assert page_outcome(rows) == ([record.key for record in records],
                                  [msgspec.json.encode(record) for record in records])
    assert page_outcome([{"ITEM_NO": "I1", "SITE": "P100"}, {"SITE": "P200"}]) is None  # no item: row by row


MILESTONES_AS_SENT = Mapping(system="logistics", entity="shipment_milestone", fields={
    "shipment_id": "shipment_id", "milestone": "milestone", "occurred_at": "occurred_at", "place": "place",
    "carrier": "carrier", "detail": "detail"})
MILESTONES_EVERY_FIELD = Mapping(system="logistics", entity="shipment_milestone", fields={
    **MILESTONES_AS_SENT.fields, "location_id": "location_id", "estimated_arrival": "estimated_arrival"})
MILESTONES_RENAMED = Mapping(system="logistics", entity="shipment_milestone", fields={
    "shipment_id": "ShipmentRef", "milestone": "Status", "occurred_at": "EventTime", "place": "Where",
    "carrier": "Carrier"})


@pytest.mark.parametrize("mapping", [MILESTONES_AS_SENT, MILESTONES_EVERY_FIELD, MILESTONES_RENAMED],
                         ids=["same names", "every field, same names", "renamed"])
@pytest.mark.parametrize("tweak", ["as sent", "null", "left out", "padded", "blank", "other keys"])
def test_a_page_of_events_maps_at_once_as_row_by_row(mapping: Mapping, tweak: str) -> None:
    """Rows taken as they came (decoded straight from them) or stripped and rebuilt first: either way the records
    row by row makes. A row's keys that the mapping does not name are never read, even where they are named like
    a field of the entity."""
    field_map = FieldMap("milestones", mapping)
    columns = dict(mapping.fields)
    rows = []
    for n in range(5):
        row = {columns["shipment_id"]: f"SH-{n}", columns["milestone"]: "departed",
               columns["occurred_at"]: f"2026-03-02T08:0{n}:00Z", columns["place"]: "DEHAM",
               columns["carrier"]: "OceanLine"}
        if "detail" in columns:
            row[columns["detail"]] = f"vessel {n}"
        rows.append(row)
    place = columns["place"]
    if tweak == "null":
        rows[1][place] = None
    elif tweak == "left out":
        del rows[2][place]
    elif tweak == "padded":
        rows[3][place] = " DEHAM "
    elif tweak == "blank":
        rows[3][place] = "  "
    elif tweak == "other keys":
        for row in rows:
            row.update({"location_id": "P100", "estimated_arrival": "2026-03-09T00:00:00Z", "noise": 1})
    records = [field_map.map(row)[0] for row in rows]
    plan = rename_plan.page_mapper(field_map)
    assert plan is not None
    assert plan(rows) == ([record.key for record in records], [msgspec.json.encode(record) for record in records])


def test_a_page_of_events_with_a_bad_time_goes_row_by_row() -> None:
    plan = rename_plan.page_mapper(FieldMap("milestones", MILESTONES_RENAMED))
    assert plan is not None
    good = {"ShipmentRef": "SH-1", "Status": "departed", "EventTime": "2026-03-02T08:00:00Z"}
    assert plan([good, {**good, "EventTime": "yesterday"}]) is None
    assert plan([good, {**good, "EventTime": "2026-03-02T08:00:00+01:00"}]) is None  # not UTC


@pytest.mark.parametrize("bad", [row for row in ROWS if outcome(FieldMap("items", RENAMES).map, row)[0] == "error"]
                         + [ROWS[2], ROWS[-1]])
def test_a_page_with_a_row_that_fails_or_is_not_all_text_goes_row_by_row(bad: dict[str, Any]) -> None:
    assert page_outcome([ROWS[0], bad, ROWS[1]]) is None


@pytest.mark.parametrize("value", ["-0.5", "NaN", "-Infinity", "Infinity", "sNaN", "1e400000000000"])
def test_every_decimal_check_holds_on_a_page(value: str) -> None:
    row = {**ROWS[0], "SAFETY_STOCK": value}
    expected = outcome(FieldMap("items", RENAMES).map, row)
    mapped = page_outcome([ROWS[0], row])
    if expected[0] == "error":
        assert mapped is None
    else:
        assert mapped is not None and mapped[1][1] == msgspec.json.encode(expected[1])


def test_entities_with_checks_of_their_own_have_no_page_plan() -> None:
    supplier = Mapping(system="erp", entity="item_supplier", fields={
        "item_id": "ITEM_NO", "supplier_id": "VENDOR", "lead_time_days": "DAYS"})
    assert rename_plan.page_mapper(FieldMap("suppliers", supplier)) is None
    assert rename_plan.page_mapper(FieldMap("items", Mapping(system="erp", entity="item_location", fields={
        "item_id": "ITEM_NO", "location_id": {"const": "P100"}}))) is None


def store_after_two_exports(tmp_path: Path, name: str, general: bool, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    with monkeypatch.context() as patch:
        if general:
            patch.setattr(rename_plan, "_rename_plan", lambda field_map: None)
            patch.setattr(rename_plan, "_page_plan", lambda field_map: None)
        drop = tmp_path / name
        drop.mkdir()
        connector = FilesConnector("erp", FilesConfig(folder=str(drop)), base_dir=tmp_path)
        connector.page_size = 3
        field_map = FieldMap("items", RENAMES)
        assert (rename_plan.mapper(field_map) == field_map.map) is general
        header = "ITEM_NO,SITE,PROCUREMENT,LEAD_TIME_DAYS,SAFETY_STOCK,PLANNER\n"
        exports = [
            header + "I1,P100,make,5,10,ALEE\nI2,P100,,,1.5,\nI3,P100,buy,x,1,\nI4,P100,buy,1,-1,\n"
                     "I5,P100,buy,2,2,B\nI6,P100,buy,2,2,B\n",
            header + "I1,P100,make,5,10,ALEE\nI2,P100,,,2.5,\nI3,P100,buy,3,1,\nI5,P100,buy,2,2,B\n"
                     "I7,P100,make,9,9,C\nI5,P100,buy,4,2,B\n",
        ]
        with open_store(f"sqlite:///{tmp_path / name}.db") as store:
            for number, text in enumerate(exports):
                (drop / f"items_{number}.csv").write_text(text)
                run_inbound(store, "items", connector, field_map, mode="full", source="items_*.csv", batch_id="b")
            return everything(store)


def everything(store: Store) -> list[Any]:
    state = [(row.key, row.version, row.content_hash, row.payload, row.deleted, row.last_seq)
             for row in store.current("item_location", include_deleted=True)]
    log = [(c.seq, c.key, c.version, c.op, c.content_hash, c.payload, c.lineage) for c in store.changes(0)]
    quarantine = [(q.location, q.record_key, q.reasons, q.payload) for q in store.quarantine()]
    sources = [(s.key, s.flow, s.payload, s.source_id) for s in store.sources("item_location")]
    return [state, log, quarantine, sources]


def test_a_flow_through_the_plan_leaves_the_same_store_as_the_general_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = store_after_two_exports(tmp_path, "fast", False, monkeypatch)
    general = store_after_two_exports(tmp_path, "general", True, monkeypatch)
    assert fast == general
    state, log, quarantine, sources = fast
    # I3 and I4 are quarantined by the first export, I3 maps in the second; I6 is deleted; I5's last row wins.
    assert [(row[0], row[4]) for row in state] == [
        ("I1|P100", False), ("I2|P100", False), ("I3|P100", False), ("I5|P100", False), ("I6|P100", True),
        ("I7|P100", False)]
    assert b'"lead_time_days":"4"' in state[3][3]
    assert [entry[1] for entry in quarantine] == ["I3|P100", "I4|P100"]
    assert [change[1] for change in log if change[3] == "delete"] == ["I6|P100"]
    assert [source[0] for source in sources] == ["I1|P100", "I2|P100", "I3|P100", "I5|P100", "I7|P100"]


def test_a_page_longer_than_a_chunk_is_mapped_chunk_by_chunk_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rename_plan, "CHUNK", 2)
    field_map = FieldMap("items", RENAMES)
    rows = [{**ROWS[0], "ITEM_NO": f"I{n}"} for n in range(7)]
    records = [field_map.map(row)[0] for row in rows]
    assert page_outcome(rows) == ([record.key for record in records], [msgspec.json.encode(r) for r in records])
    assert page_outcome([*rows, {**ROWS[0], "SAFETY_STOCK": "-1"}]) is None  # in the last chunk
