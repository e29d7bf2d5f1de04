"""The drop-folder connector: which files it reads, where each row comes from, and that no file is read twice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncfabric.connectors.base import Page
from syncfabric.connectors.files.configuration import FilesConfig
from syncfabric.connectors.files.connector import FilesConnector, decode_cursor
from syncfabric.errors import PermanentError

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
