"""A first load reads CSV lines a block at a time: the pages it gives are the row-by-row reader's, row for row (data,
location, input hash), with the same problems, cursors and page boundaries, wherever a page or a resume falls."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from syncfabric.connectors.files import formats
from syncfabric.connectors.files.configuration import FilesConfig
from syncfabric.connectors.files.connector import FilesConnector
from syncfabric.flows.unchanged import KnownInputs

COLUMNS = "ITEM_NO,SITE,LEAD_TIME_DAYS,PLANNER"
PLAIN = [f"I{number},P{number % 3},{number % 7}, ALEE" for number in range(1, 40)]
MIXED = [
    *PLAIN[:9], 'I50,P1,3,"ALEE', 'CWONG"', *PLAIN[9:20], ",,,", "I51,P1", *PLAIN[20:30], "", "I52,P1\r,4,B",
    'I53,P1,5,"B,C"', *PLAIN[30:], "I54,P1,6,Ü\x07",
]


def pages(tmp_path: Path, lines: list[str], page_size: int, *, newline: str = "\n", by_row: bool = False,
          cursor: str | None = None, block: int = formats.BLOCK, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    folder = tmp_path / "drop"
    folder.mkdir(exist_ok=True)
    path = folder / "export.csv"
    path.write_bytes(("\ufeff" + COLUMNS + newline + newline.join(lines) + newline).encode())
    os.utime(path, (1_800_000_000, 1_800_000_000))  # the same file each time: the same cursors
    files = FilesConnector("erp", FilesConfig(folder="drop"), base_dir=tmp_path)
    files.page_size = page_size
    with monkeypatch.context() as patch:
        patch.setattr(formats, "BLOCK", block)
        if by_row:
            patch.setattr(formats, "_plain_rows", lambda block, delimiter, width: None)
        read = list(files.read_full_known("export.csv", cursor, KnownInputs(b"k" * 32, {})))
    return [([(r.data, r.location, r.input_hash) for r in page.records], page.cursor, page.complete,
             list(page.problems), list(page.unchanged)) for page in read]


@pytest.mark.parametrize("block", [4, formats.BLOCK])
@pytest.mark.parametrize("page_size", [1, 2, 5, 9, 1000])
@pytest.mark.parametrize("lines", [PLAIN, MIXED], ids=["plain", "mixed"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_blocks_of_lines_read_as_row_by_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page_size: int,
                                            lines: list[str], newline: str, block: int) -> None:
    blocks = pages(tmp_path, lines, page_size, newline=newline, block=block, monkeypatch=monkeypatch)
    rows = pages(tmp_path, lines, page_size, newline=newline, by_row=True, monkeypatch=monkeypatch)
    assert blocks == rows
    assert sum(len(page[0]) for page in blocks) >= 39
    assert all(len(page[0]) + len(page[3]) <= page_size for page in blocks)
    assert all(hashed for page in blocks for _, _, hashed in page[0])


def test_every_kind_of_line_is_in_the_mixed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [(records, _, _, problems, _)] = pages(tmp_path, MIXED, 1000, monkeypatch=monkeypatch)
    by_item = {data["ITEM_NO"]: (data, where) for data, where, _ in records}
    assert by_item["I50"] == ({"ITEM_NO": "I50", "SITE": "P1", "LEAD_TIME_DAYS": "3", "PLANNER": "ALEE\nCWONG"},
                              "export.csv:11")
    assert by_item["I53"][0]["PLANNER"] == "B,C" and by_item["I1"][1] == "export.csv:2"
    assert [problem.location for problem in problems] == ["export.csv:25", "export.csv:37", "export.csv:38"]


@pytest.mark.parametrize("page_size", [2, 7])
def test_a_read_resumed_at_each_cursor_gives_the_pages_after_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 page_size: int) -> None:
    whole = pages(tmp_path, MIXED, page_size, monkeypatch=monkeypatch)
    for number, page in enumerate(whole[:-1]):
        resumed = pages(tmp_path, MIXED, page_size, cursor=page[1], block=3, monkeypatch=monkeypatch)
        rows = pages(tmp_path, MIXED, page_size, cursor=page[1], by_row=True, monkeypatch=monkeypatch)
        assert resumed == rows
        assert [row for later in resumed for row in later[0]] == [row for later in whole[number + 1:]
                                                                  for row in later[0]]
