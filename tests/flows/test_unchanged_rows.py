"""A full refresh skips mapping rows whose input is the one their key's state was last accepted from, and only
those: a changed row, a changed mapping, a row quarantined before, a key written by another flow or deleted, and a
key repeated in the snapshot are all mapped again. CSV exports in a drop folder, a real SQLite store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from syncfabric.config.schema import Mapping
from syncfabric.connectors.files.configuration import FilesConfig
from syncfabric.connectors.files.connector import FilesConnector
from syncfabric.flows import inbound
from syncfabric.flows.inbound import run_inbound
from syncfabric.flows.result import FlowResult
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet
from syncfabric.store import IncomingRecord, Lineage, Store

FLOW = "item-locations-in"
COLUMNS = "ITEM_NO,SITE,LEAD_TIME_DAYS,PLANNER"
MAPPING = Mapping(system="erp", entity="item_location", fields={
    "item_id": "ITEM_NO", "location_id": "SITE", "lead_time_days": "LEAD_TIME_DAYS", "planner": "PLANNER"})


class Harness:
    def __init__(self, store: Store, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = store
        self.drop = folder / "drop"
        self.drop.mkdir()
        self.files = FilesConnector("erp", FilesConfig(folder="drop"), base_dir=folder)
        self.files.page_size = 3
        self.exports = 0
        self.mapped: list[str] = []
        """The ITEM_NO of every row mapping saw, over all runs."""
        original = inbound.map_and_check

        def counting(rows: Any, *args: Any) -> Any:
            self.mapped.extend(row["ITEM_NO"] for row in rows)
            return original(rows, *args)

        monkeypatch.setattr(inbound, "map_and_check", counting)
        page_mapper = inbound.page_mapper

        def counting_pages(field_map: FieldMap) -> Any:  # a page mapped at once, else row by row (counted above)
            plan = page_mapper(field_map)
            if plan is None:
                return None

            def mapping(rows: Any) -> Any:
                mapped = plan(rows)
                if mapped is not None:
                    self.mapped.extend(row["ITEM_NO"] for row in rows)
                return mapped

            return mapping

        monkeypatch.setattr(inbound, "page_mapper", counting_pages)

    def run(self, lines: list[str], mapping: Mapping = MAPPING, flow: str = FLOW, columns: str = COLUMNS,
            newline: str = "\n", **options: Any) -> FlowResult:
        self.exports += 1
        path = self.drop / f"item_locations_{self.exports}.csv"
        path.write_bytes(newline.join([columns, *lines]).encode() + newline.encode())
        os.utime(path, (1_700_000_000 + self.exports, 1_700_000_000 + self.exports))
        self.mapped.clear()
        return run_inbound(self.store, flow, self.files, FieldMap("item-locations", mapping), mode="full",
                           source="item_locations_*.csv", **options)

    def state(self) -> dict[str, dict[str, Any]]:
        return {row.key: msgspec.json.decode(row.payload) for row in self.store.current("item_location")}


@pytest.fixture
def harness(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    return Harness(store, tmp_path, monkeypatch)


ROWS = [f"I{n},P1,{n},ALEE" for n in range(1, 8)]


def test_an_unchanged_export_is_not_mapped_again_and_a_changed_row_is(harness: Harness) -> None:
    first = harness.run(ROWS)
    assert first.inserted == 7 and len(harness.mapped) == 7

    again = harness.run(ROWS)
    assert harness.mapped == []
    assert (again.records_in, again.unchanged, again.changed) == (7, 7, 0)

    changed = [*ROWS[:2], "I3,P1,30,ALEE", *ROWS[3:]]
    result = harness.run(changed)
    assert harness.mapped == ["I3"]
    assert (result.updated, result.unchanged) == (1, 6)
    assert harness.state()["I3|P1"]["lead_time_days"] == "30"


def test_rows_left_out_of_a_complete_snapshot_are_still_deleted_and_come_back_when_they_return(
    harness: Harness,
) -> None:
    harness.run(ROWS)
    result = harness.run(ROWS[1:])
    assert result.deleted == 1 and "I1|P1" not in harness.state()

    back = harness.run(ROWS)  # the same raw row as before its deletion: mapped, not skipped
    assert harness.mapped == ["I1"]
    assert back.updated == 1 and "I1|P1" in harness.state()  # a new version of the tombstone


def test_a_changed_mapping_maps_every_row_again_and_then_skips_them(harness: Harness) -> None:
    harness.run(ROWS)
    renamed = Mapping(system="erp", entity="item_location", version=2, fields={
        **MAPPING.fields, "planner": "ITEM_NO"})  # a new mapping: the planner now comes from another column

    result = harness.run(ROWS, renamed)
    assert len(harness.mapped) == 7 and result.updated == 7
    assert harness.state()["I4|P1"]["planner"] == "I4"

    harness.run(ROWS, renamed)
    assert harness.mapped == []

    same_version = Mapping(system="erp", entity="item_location", version=2, fields=MAPPING.fields)
    result = harness.run(ROWS, same_version)  # a different definition under the same version number
    assert len(harness.mapped) == 7 and result.updated == 7
    assert harness.state()["I4|P1"]["planner"] == "ALEE"


def test_unchanged_records_keep_the_hash_of_their_new_input(harness: Harness) -> None:
    """A row whose raw form changed without changing the record (padding) is mapped once, then skipped."""
    harness.run(ROWS)
    padded = [*ROWS[:5], "I6 ,P1,6,ALEE", ROWS[6]]
    assert harness.run(padded).unchanged == 7 and harness.mapped == ["I6 "]
    harness.run(padded)
    assert harness.mapped == []


def test_a_row_quarantined_before_is_checked_again(harness: Harness) -> None:
    bad = [*ROWS[:3], "I4,P1,-4,ALEE", *ROWS[4:]]
    assert harness.run(bad).quarantined == 1

    result = harness.run(bad)  # the same bad row: checked and quarantined again, its key kept
    assert harness.mapped == ["I4"]
    assert result.quarantined == 1 and result.deleted == 0

    fixed = harness.run(ROWS)
    assert harness.mapped == ["I4"] and fixed.inserted == 1
    assert harness.state()["I4|P1"]["lead_time_days"] == "4"


def test_a_row_that_turned_bad_keeps_the_last_accepted_state_and_its_return_is_skipped(harness: Harness) -> None:
    harness.run(ROWS)
    harness.run([*ROWS[:3], "I4,P1,-4,ALEE", *ROWS[4:]])
    assert harness.state()["I4|P1"]["lead_time_days"] == "4"
    result = harness.run(ROWS)
    assert harness.mapped == [] and result.unchanged == 7


def test_a_key_another_flow_wrote_is_mapped_again(harness: Harness, store: Store) -> None:
    harness.run(ROWS)
    with store.transaction() as tx:  # another path writes I2 (a replay, a listener): it keeps no input hash
        tx.apply("item_location", [IncomingRecord("I2|P1", msgspec.json.encode(
            {"item_id": "I2", "location_id": "P1", "lead_time_days": "99"}), Lineage("mes"))])

    result = harness.run(ROWS)
    assert harness.mapped == ["I2"] and result.updated == 1
    assert harness.state()["I2|P1"]["lead_time_days"] == "2"

    other = harness.run(ROWS, flow="other-flow")  # the hashes are the flow's own
    assert len(harness.mapped) == 7 and other.changed == 0


def test_the_last_row_of_a_repeated_key_wins_whether_or_not_it_is_skipped(harness: Harness) -> None:
    harness.run(ROWS)
    # Page size 3: I2 changed then unchanged in one page; I5 unchanged then changed in one page; I1 changed on the
    # first page and unchanged on a later one.
    result = harness.run(["I1,P1,10,ALEE", "I2,P1,20,ALEE", ROWS[1],
                          ROWS[4], "I5,P1,50,ALEE", ROWS[0],
                          ROWS[2], ROWS[3], ROWS[5], ROWS[6]])
    state = harness.state()
    assert state["I2|P1"]["lead_time_days"] == "2"
    assert state["I5|P1"]["lead_time_days"] == "50"
    assert state["I1|P1"]["lead_time_days"] == "1"
    assert result.quarantined == 0 and len(state) == 7


def test_flows_with_rules_map_every_row(harness: Harness) -> None:
    from syncfabric.config.schema import Rule

    rules = RuleSet("item_location", [msgspec.convert(
        {"kind": "range", "field": "lead_time_days", "max": 5, "severity": "warn"}, Rule)])
    harness.run(ROWS, rules=rules)
    result = harness.run(ROWS, rules=rules)
    assert len(harness.mapped) == 7
    assert len(result.warnings) == 2  # reported on every run, as before


QUOTED = ['I1,P1,1,"ALEE, BTAN"', 'I2,P1,2,"A ""LEE"""', 'I3,P1,3,"ALEE', 'BTAN"', "I4,P1,4,ALEE", "I5,P1,x", ""]
"""Quoted cells with a delimiter, doubled quotes and a line break, then a row of too few cells and a blank line."""


def test_quoted_rows_spanning_lines_are_skipped_when_unchanged_and_mapped_when_changed(harness: Harness) -> None:
    first = harness.run(QUOTED)
    assert (first.inserted, first.quarantined) == (4, 1)
    state = harness.state()
    assert (state["I1|P1"]["planner"], state["I2|P1"]["planner"], state["I3|P1"]["planner"]) == (
        "ALEE, BTAN", 'A "LEE"', "ALEE\nBTAN")
    [bad] = harness.store.quarantine()
    assert bad.location == "item_locations_1.csv:7"  # after the row on lines 5 and 6

    again = harness.run(QUOTED)
    assert harness.mapped == []  # the short row is refused again by the reader
    assert (again.unchanged, again.changed, again.quarantined) == (4, 0, 1)

    edited = [*QUOTED[:2], 'I3,P1,3,"ALEE', 'CWONG"', *QUOTED[4:]]
    result = harness.run(edited)
    assert harness.mapped == ["I3"]
    assert result.updated == 1 and harness.state()["I3|P1"]["planner"] == "ALEE\nCWONG"


def test_the_same_line_under_another_header_is_mapped_again(harness: Harness) -> None:
    harness.run(["I1,P1,4,5"])
    result = harness.run(["I1,P1,4,5"], columns="ITEM_NO,SITE,PLANNER,LEAD_TIME_DAYS")
    assert harness.mapped == ["I1"] and result.updated == 1
    assert harness.state()["I1|P1"]["planner"] == "4"


def test_a_line_whose_text_changed_but_not_its_cells_is_mapped_and_writes_nothing(harness: Harness) -> None:
    harness.run(ROWS)
    result = harness.run(ROWS, newline="\r\n")
    assert len(harness.mapped) == 7 and (result.changed, result.unchanged) == (0, 7)
    harness.run(ROWS, newline="\r\n")
    assert harness.mapped == []


def test_a_read_that_skips_nothing_reads_what_the_plain_read_reads(tmp_path: Path) -> None:
    """The line-by-line reader splits unquoted lines itself: it must give the csv module's rows and lines."""
    from syncfabric.flows.unchanged import KnownInputs

    (tmp_path / "drop").mkdir()
    lines = [*QUOTED, "I6,P1,6,", ",,,", "I7;P1,7,ALEE", 'I8,P1,8,"BTAN"', "  I9 ,P1,9, ALEE ", "I10,P1\r,10,ALEE"]
    (tmp_path / "drop" / "export.csv").write_bytes(("\ufeff" + COLUMNS + "\r\n" + "\r\n".join(lines)).encode())
    files = FilesConnector("erp", FilesConfig(folder="drop"), base_dir=tmp_path)
    files.page_size = 4
    plain = list(files.read_full("export.csv"))
    known = KnownInputs(b"k" * 32, {})
    skipping = list(files.read_full_known("export.csv", None, known))
    assert [[(r.data, r.location) for r in page.records] for page in skipping] == [
        [(r.data, r.location) for r in page.records] for page in plain]
    assert [(page.cursor, page.complete, page.problems, list(page.unchanged)) for page in skipping] == [
        (page.cursor, page.complete, page.problems, []) for page in plain]
    assert all(record.input_hash for page in skipping for record in page.records)
