"""The drop-folder connector: which files it reads, where each row comes from, and that no file is read twice."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from syncfabric.config import load_estate
from syncfabric.config.loader import validate_estate_file
from syncfabric.connectors.base import Page
from syncfabric.connectors.files.configuration import FilesConfig, FixedColumn
from syncfabric.connectors.files.connector import FilesConnector, decode_cursor
from syncfabric.connectors.files.exceptions import translate_error
from syncfabric.errors import PermanentError, TransientError
from syncfabric.flows.runtime import Runtime

HEADER = "ITEM_NO,SITE,ON_HAND\n"


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def connector(drop: Path, **config: object) -> FilesConnector:
    return FilesConnector("erp", FilesConfig(folder=drop.name, **config), base_dir=drop.parent)  # type: ignore[arg-type]


def write(drop: Path, name: str, text: str, *, age: int = 0, encoding: str = "utf-8") -> Path:
    """A file in the drop folder; a larger ``age`` makes it older (read first)."""
    path = drop / name
    path.write_bytes(text.encode(encoding))
    stamp = 1_800_000_000 - age
    os.utime(path, (stamp, stamp))
    return path


def read_all(source: FilesConnector, pattern: str = "*.csv", cursor: str | None = None) -> list[Page]:
    return list(source.read_full(pattern, cursor))


def rows(pages: list[Page]) -> list[tuple[str, str]]:
    return [(record.location, record.data["ITEM_NO"]) for page in pages for record in page.records]


def consume(source: FilesConnector, pattern: str = "*.csv") -> list[Page]:
    """Read and acknowledge every page, as a flow does after committing each."""
    pages = []
    for page in source.read_full(pattern):
        pages.append(page)
        assert page.cursor is not None
        source.acknowledge(pattern, page.cursor)
    return pages


def test_with_a_marker_suffix_only_files_with_their_marker_are_read(drop: Path) -> None:
    write(drop, "inv_1.csv", HEADER + "A,P1,1\n", age=20)
    write(drop, "inv_1.csv.done", "")
    write(drop, "inv_2.csv", HEADER + "B,P1,2\n", age=10)
    source = connector(drop, marker_suffix=".done")

    assert [path.name for path in source.pending_files("inv_*.csv")] == ["inv_1.csv"]
    assert rows(consume(source, "inv_*.csv")) == [("inv_1.csv:2", "A")]
    assert not (drop / "inv_1.csv.done").exists(), "the marker goes with the file it marks"

    write(drop, "inv_2.csv.done", "")
    assert rows(consume(source, "inv_*.csv")) == [("inv_2.csv:2", "B")]
    assert sorted(path.name for path in (drop / "archive").iterdir()) == ["inv_1.csv", "inv_2.csv"]


def test_files_still_being_written_and_hidden_files_are_ignored(drop: Path) -> None:
    for name in ("inv_1.csv.part", "inv_2.csv.tmp", "inv_3.csv.partial", ".inv_4.csv"):
        write(drop, name, HEADER + "X,P1,1\n")
    write(drop, "inv_5.csv", HEADER + "A,P1,1\n")
    (drop / "inv_6.csv").mkdir()

    assert [path.name for path in connector(drop).pending_files("inv_*")] == ["inv_5.csv"]
    assert rows(read_all(connector(drop), "inv_*")) == [("inv_5.csv:2", "A")]


def test_files_are_read_oldest_first_each_ending_a_complete_snapshot(drop: Path) -> None:
    write(drop, "b.csv", HEADER + "B,P1,1\n", age=10)
    write(drop, "a.csv", HEADER + "A,P1,1\n", age=5)

    pages = read_all(connector(drop))

    assert rows(pages) == [("b.csv:2", "B"), ("a.csv:2", "A")]
    assert [page.complete for page in pages] == [True, True]


def test_an_archived_file_is_never_read_again(drop: Path) -> None:
    write(drop, "inv.csv", HEADER + "A,P1,1\nB,P1,2\n")
    source = connector(drop)
    pages = consume(source)
    assert rows(pages) == [("inv.csv:2", "A"), ("inv.csv:3", "B")]

    assert read_all(source, cursor=pages[-1].cursor) == []
    assert read_all(source) == []
    assert [path.name for path in (drop / "archive").iterdir()] == ["inv.csv"]


def test_a_crash_after_commit_but_before_archiving_archives_without_reading_again(drop: Path) -> None:
    write(drop, "inv.csv", HEADER + "A,P1,1\n", age=10)
    write(drop, "later.csv", HEADER + "Z,P1,1\n", age=5)
    source = connector(drop)
    first = next(iter(source.read_full("*.csv")))  # committed; the process dies before acknowledging
    assert first.complete and first.cursor is not None
    assert (drop / "inv.csv").exists()

    pages = read_all(connector(drop), cursor=first.cursor)

    assert rows(pages) == [("later.csv:2", "Z")]
    assert not (drop / "inv.csv").exists()
    assert (drop / "archive" / "inv.csv").exists()


def test_a_file_replaced_under_the_same_name_is_read_not_archived_blindly(drop: Path) -> None:
    write(drop, "inv.csv", HEADER + "A,P1,1\n", age=10)
    [done] = read_all(connector(drop))
    write(drop, "inv.csv", HEADER + "A,P1,1\nB,P1,7\n", age=1)  # a new export, same name

    pages = read_all(connector(drop), cursor=done.cursor)

    assert rows(pages) == [("inv.csv:2", "A"), ("inv.csv:3", "B")]


def test_pages_resume_exactly_after_the_committed_cursor(drop: Path) -> None:
    write(drop, "inv.csv", HEADER + "".join(f"I{n},P1,{n}\n" for n in range(1, 8)))
    source = connector(drop)
    source.page_size = 3

    pages = read_all(source)
    assert [len(page.records) for page in pages] == [3, 3, 1]
    assert [page.complete for page in pages] == [False, False, True]
    cursor = decode_cursor(pages[0].cursor)
    assert cursor is not None and (cursor.file, cursor.line, cursor.done) == ("inv.csv", 4, False)

    resumed = read_all(source, cursor=pages[0].cursor)

    assert rows(resumed) == [(f"inv.csv:{n + 1}", f"I{n}") for n in range(4, 8)]


def test_a_row_with_the_wrong_number_of_columns_is_rejected_with_file_and_line(drop: Path) -> None:
    write(drop, "inv.csv", HEADER + "A,P1,1\nB,P1\nC,P1,3,extra\nD,P1,4\n")

    [page] = read_all(connector(drop))

    assert rows([page]) == [("inv.csv:2", "A"), ("inv.csv:5", "D")]
    assert [(problem.location, problem.raw) for problem in page.problems] == [
        ("inv.csv:3", "B,P1"), ("inv.csv:4", "C,P1,3,extra")]
    assert page.problems[0].reason == "expected 3 columns (ITEM_NO, SITE, ON_HAND), got 2"
    assert "got 4" in page.problems[1].reason


def test_a_file_that_is_not_in_the_configured_encoding_is_a_permanent_error_naming_it(drop: Path) -> None:
    write(drop, "inv_cp1252.csv", HEADER + "Müller,P1,1\n", encoding="cp1252")

    with pytest.raises(PermanentError) as raised:
        read_all(connector(drop))

    assert "inv_cp1252.csv" in str(raised.value) and "utf-8" in str(raised.value)
    assert raised.value.system == "erp"
    assert (drop / "inv_cp1252.csv").exists()

    [page] = read_all(connector(drop, encoding="cp1252"))
    assert rows([page]) == [("inv_cp1252.csv:2", "Müller")]


def test_an_empty_file_is_a_permanent_error(drop: Path) -> None:
    write(drop, "inv.csv", "")

    with pytest.raises(PermanentError, match=r"inv\.csv: file is empty"):
        read_all(connector(drop))


MULTILINE = (
    HEADER                       # line 1
    + "A,P1,1\n"                 # line 2
    + '"B\nsecond line",P1,2\n'  # lines 3-4
    + "\n"                       # line 5, blank
    + 'C,"P\n1\n",3\n'           # lines 6-8
    + "D,P1\n"                   # line 9, broken
    + "E,P1,5\n"                 # line 10
)


def test_rows_with_multi_line_quoted_cells_are_located_at_the_line_they_start(drop: Path) -> None:
    write(drop, "inv.csv", MULTILINE)

    [page] = read_all(connector(drop))

    assert rows([page]) == [("inv.csv:2", "A"), ("inv.csv:3", "B\nsecond line"), ("inv.csv:6", "C"),
                            ("inv.csv:10", "E")]
    assert page.records[2].data["SITE"] == "P\n1\n"
    assert [problem.location for problem in page.problems] == ["inv.csv:9"]


def test_resuming_after_a_multi_line_row_neither_repeats_nor_skips_rows(drop: Path) -> None:
    write(drop, "inv.csv", MULTILINE)
    source = connector(drop)
    source.page_size = 2

    pages = read_all(source)
    assert rows(pages[:1]) == [("inv.csv:2", "A"), ("inv.csv:3", "B\nsecond line")]

    resumed = read_all(source, cursor=pages[0].cursor)

    assert rows(resumed) == [("inv.csv:6", "C"), ("inv.csv:10", "E")]
    assert [problem.location for page in resumed for problem in page.problems] == ["inv.csv:9"]


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(drop: Path) -> None:
    write(drop, "inv.csv", "\ufeff" + HEADER + "A,P1,1\n")

    [page] = read_all(connector(drop))

    assert page.records[0].data == {"ITEM_NO": "A", "SITE": "P1", "ON_HAND": "1"}


# ---- JSON lines and fixed-width formats ------------------------------------------------------------------------

JSONL = (
    '{"item": "A", "site": "P1", "qty": {"value": 1, "unit": "EA"}}\n'  # line 1
    "\n"                                                                # line 2, blank
    '{"item": "B", "site": "P1", "qty": {"value": 2, "unit": "EA"}\n'   # line 3, broken
    '["C", "P1", 3]\n'                                                  # line 4, not an object
    '{"item": "D", "site": "P2", "qty": {"value": 4, "unit": "EA"}}\r\n'  # line 5
)


def test_json_lines_keep_nested_objects_and_reject_bad_lines_with_file_and_line(drop: Path) -> None:
    write(drop, "inv.jsonl", JSONL)

    [page] = read_all(connector(drop, format="jsonl"), "*.jsonl")

    assert [(record.location, record.data["item"]) for record in page.records] == [("inv.jsonl:1", "A"),
                                                                                  ("inv.jsonl:5", "D")]
    assert page.records[1].data["qty"] == {"value": 4, "unit": "EA"}
    assert [(problem.location, problem.raw) for problem in page.problems] == [
        ("inv.jsonl:3", '{"item": "B", "site": "P1", "qty": {"value": 2, "unit": "EA"}'),
        ("inv.jsonl:4", '["C", "P1", 3]')]
    assert page.problems[0].reason.startswith("invalid JSON: ")
    assert page.problems[1].reason == "expected a JSON object, got an array"


def test_json_lines_resume_after_the_committed_line(drop: Path) -> None:
    write(drop, "inv.jsonl", "".join(f'{{"item": "I{n}"}}\n' for n in range(1, 8)))
    source = connector(drop, format="jsonl")
    source.page_size = 3

    pages = read_all(source, "*.jsonl")
    assert [len(page.records) for page in pages] == [3, 3, 1]
    resumed = read_all(source, "*.jsonl", cursor=pages[1].cursor)
    assert [(record.location, record.data["item"]) for page in resumed for record in page.records] == [
        ("inv.jsonl:7", "I7")]


LAYOUT = [{"name": "ITEM_NO", "start": 1, "width": 8}, {"name": "SITE", "start": 9, "width": 4},
          {"name": "ON_HAND", "start": 13, "width": 7}]


def fixed(drop: Path, **config: object) -> FilesConnector:
    columns = [FixedColumn(**column) for column in LAYOUT]  # type: ignore[arg-type]
    return connector(drop, format="fixed_width", columns=columns, **config)


def test_fixed_width_columns_are_cut_at_their_positions(drop: Path) -> None:
    write(drop, "inv.txt",
          "STOCK REPORT 2026-05-01\n"     # line 1, skipped
          "MÜLLER  P1     12.5\n"         # line 2
          "B-200   P2   \n"               # line 3: trailing blanks trimmed by the writer
          "C-300\n"                       # line 4: too short
          "\n"                            # line 5
          "D-400   P3        7  FILLER\n",  # line 6: filler past the last column
          encoding="cp1252")

    [page] = read_all(fixed(drop, encoding="cp1252", skip_lines=1), "*.txt")

    assert [record.data for record in page.records] == [
        {"ITEM_NO": "MÜLLER", "SITE": "P1", "ON_HAND": "12.5"},
        {"ITEM_NO": "B-200", "SITE": "P2", "ON_HAND": ""},
        {"ITEM_NO": "D-400", "SITE": "P3", "ON_HAND": "7"},
    ]
    assert [record.location for record in page.records] == ["inv.txt:2", "inv.txt:3", "inv.txt:6"]
    assert [(problem.location, problem.raw) for problem in page.problems] == [("inv.txt:4", "C-300")]
    assert page.problems[0].reason == "line has 5 characters, but column 'ON_HAND' starts at 13"

    [unstripped] = read_all(fixed(drop, encoding="cp1252", skip_lines=1, strip=False), "*.txt")
    assert unstripped.records[0].data["ITEM_NO"] == "MÜLLER  "


def test_fixed_width_settings_are_checked(drop: Path) -> None:
    with pytest.raises(ValueError, match="needs columns"):
        FilesConfig(folder="x", format="fixed_width")
    with pytest.raises(ValueError, match="'A' and 'B' overlap"):
        FilesConfig(folder="x", format="fixed_width",
                    columns=[FixedColumn(name="A", start=1, width=5), FixedColumn(name="B", start=5, width=2)])
    with pytest.raises(ValueError, match="columns are for format fixed_width"):
        FilesConfig(folder="x", columns=[FixedColumn(name="A", start=1, width=5)])


def test_errors_reading_files_are_translated_once() -> None:
    busy = translate_error(PermissionError(13, "Permission denied"), system="erp", file="inv.csv", line=3)
    assert isinstance(busy, TransientError) and str(busy) == "inv.csv:3: Permission denied [erp]"
    broken = translate_error(csv.Error("field larger than field limit"), system="erp", file="inv.csv", line=9)
    assert isinstance(broken, PermanentError) and "inv.csv:9: field larger" in str(broken)
    wrong = translate_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), system="erp",
                            file="inv.csv", encoding="utf-8")
    assert isinstance(wrong, PermanentError) and str(wrong) == "inv.csv: not utf-8 text (invalid start byte) [erp]"


ESTATE = """\
version: 1
store: sqlite:///sf.db
systems:
  mes:
    kind: files
    connection:
      folder: drop
      format: jsonl
      marker_suffix: .done
  legacy:
    kind: files
    connection:
      folder: legacy
      format: fixed_width
      encoding: cp1252
      columns:
        - {name: ITEM_NO, start: 1, width: 8}
        - {name: TEXT, start: 9, width: 12}
mappings:
  mes-items:
    system: mes
    entity: item
    fields: {item_id: item, description: text, base_unit: {const: EA}}
  legacy-items:
    system: legacy
    entity: item
    fields: {item_id: ITEM_NO, description: TEXT, base_unit: {const: EA}}
flows:
  mes-items: {direction: inbound, system: mes, entities: [item], mode: changes, source: "items_*.jsonl",
              mapping: mes-items}
  legacy-items: {direction: inbound, system: legacy, entities: [item], mode: full, source: "*.txt",
                 mapping: legacy-items}
"""


def test_inbound_flows_from_an_estate_file(tmp_path: Path) -> None:
    (tmp_path / "drop").mkdir()
    (tmp_path / "legacy").mkdir()
    (tmp_path / "estate.yaml").write_text(ESTATE)
    write(tmp_path / "drop", "items_1.jsonl", '{"item": "A", "text": "alpha"}\nnot json\n{"item": "B"}\n')
    write(tmp_path / "legacy", "items.txt", "L-1     first\nL-2     second\n", encoding="cp1252")
    with Runtime(load_estate(tmp_path / "estate.yaml", environ={})) as runtime:
        assert runtime.run_flow("mes-items").records_in == 0, "no marker yet: the file may be incomplete"
        write(tmp_path / "drop", "items_1.jsonl.done", "")
        result = runtime.run_flow("mes-items")
        assert (result.inserted, result.quarantined) == (2, 1)
        [entry] = runtime.store.quarantine(flow="mes-items")
        assert entry.location == "items_1.jsonl:2" and "invalid JSON" in entry.reasons[0]
        assert (tmp_path / "drop" / "archive" / "items_1.jsonl").exists()
        assert runtime.run_flow("mes-items").records_in == 0, "an archived file is never read again"

        assert runtime.run_flow("legacy-items").inserted == 2
        write(tmp_path / "legacy", "items.txt", "L-1     renamed\n", encoding="cp1252")
        again = runtime.run_flow("legacy-items")
        assert (again.updated, again.deleted) == (1, 1)


def test_validate_reports_a_bad_layout_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "estate.yaml").write_text(ESTATE.replace("        - {name: TEXT, start: 9, width: 12}\n",
                                                         "        - {name: TEXT, start: 0, width: 12}\n"))
    problems = validate_estate_file(tmp_path / "estate.yaml", environ={})
    assert any("$.systems.legacy.connection.columns[1].start" in problem and "expected `int` >= 1" in problem
               for problem in problems), problems


def test_validate_reports_a_source_pattern_with_a_folder_in_it(tmp_path: Path) -> None:
    (tmp_path / "estate.yaml").write_text(ESTATE.replace('source: "*.txt"', 'source: "legacy/*.txt"'))
    [problem] = validate_estate_file(tmp_path / "estate.yaml", environ={})
    assert "must be a file name pattern inside the folder (legacy)" in problem
    assert problem.endswith("@ $.flows.legacy-items.source")


def test_a_record_written_over_several_rows_is_grouped_into_one(drop: Path) -> None:
    """A BOM explosion report: a row per component, the parent's columns on each; rows of one parent and site
    become one record with its rows, wherever they are in the file; a row without its parent is a problem."""
    from syncfabric.connectors.files.configuration import RowGroup

    write(drop, "boms_1.csv", "PARENT,SITE,LINE,COMPONENT,QTY\n"
                              "FG-1,P100,10,RM-1,2\nFG-1,P100,20,RM-2,1\n"
                              "FG-1,P200,10,RM-3,4\n"
                              ",P100,30,RM-9,1\n"
                              "FG-1,P100,30,RM-4,3\n")
    source = connector(drop, groups={"boms_*.csv": RowGroup(by=["PARENT", "SITE"], into="LINES")})
    [page] = read_all(source, "boms_*.csv")
    assert page.complete and decode_cursor(page.cursor).done
    grouped = {(r.data["PARENT"], r.data["SITE"]): r for r in page.records}
    assert sorted(grouped) == [("FG-1", "P100"), ("FG-1", "P200")]
    assert [line["COMPONENT"] for line in grouped["FG-1", "P100"].data["LINES"]] == ["RM-1", "RM-2", "RM-4"]
    assert grouped["FG-1", "P100"].location == "boms_1.csv:2-6" and grouped["FG-1", "P200"].location == "boms_1.csv:4"
    [problem] = page.problems
    assert problem.location == "boms_1.csv:5" and "no value in PARENT" in problem.reason
    # a grouped source is read whole even where unchanged rows could be left unread
    [again] = list(source.read_full_known("boms_*.csv", None, known=object()))
    assert len(again.records) == 2 and not again.unchanged
