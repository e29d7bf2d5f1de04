"""One reader per file format. Each turns an open text file into rows located by physical line: the line a row
starts on (to show where it is) and the line it ends on (to resume after it); a row that cannot be read carries the
reason instead of data, and becomes a RejectedRaw."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from itertools import islice, repeat
from typing import Any, NamedTuple, TextIO

import msgspec

from syncfabric.connectors.base import RawRecord
from syncfabric.connectors.files.configuration import FilesConfig
from syncfabric.connectors.files.exceptions import empty_file


class Row(NamedTuple):  # a tuple: built once per row of every file, so it must be cheap
    first: int
    """Physical line the row starts on (1-based)."""
    last: int
    """Physical line the row ends on."""
    raw: str
    data: dict[str, Any] | None = None
    reason: str = ""
    blank: bool = False
    input_hash: str | None = None
    """With known inputs: the hash of the row's input."""


def read_csv(handle: TextIO, config: FilesConfig, file: str, system: str) -> Iterator[Row]:
    reader = csv.reader(handle, delimiter=config.delimiter)
    header = next(reader, None)
    if not header:
        raise empty_file(file, system=system)
    header[0] = header[0].removeprefix("\ufeff")  # the byte order mark spreadsheet tools write
    header = [column.strip() for column in header]
    line = reader.line_num
    delimiter = config.delimiter
    width = len(header)
    for cells in reader:
        # A quoted cell may span lines: a row is located where it starts, resumed after where it ends.
        first, line = line + 1, reader.line_num
        if len(cells) == width and "".join(cells).strip():  # the common case: no raw text needed
            yield Row(first, line, "", dict(zip(header, cells, strict=True)))
        elif not "".join(cells).strip():  # every cell blank
            yield Row(first, line, delimiter.join(cells), blank=True)
        else:
            yield Row(first, line, delimiter.join(cells), reason=f"expected {width} columns ({', '.join(header)}), "
                                                                 f"got {len(cells)}")


BLOCK = 256
"""Lines read at a time by a first load: enough to spread the cost of each pass, few enough that their objects stay
in the processor's cache from one pass to the next."""


class Rows(NamedTuple):
    """Rows of consecutive lines, one row per line, as raw records (read a block of lines at a time)."""

    first: int
    """Physical line of the first row."""
    records: list[RawRecord]


def read_csv_known(
    handle: TextIO, config: FilesConfig, file: str, system: str, known: Any, room: Callable[[], int] | None = None
) -> Iterator[Row | tuple[int, str] | Rows]:
    """``read_csv``, leaving unread the rows whose input ``known`` (a ``flows.unchanged.KnownInputs``) holds for a
    key not in ``known.seen``. A line without a quote character (nor NUL) is a whole row: it is hashed as its text
    and, when known, not parsed, else split at the delimiter (as the csv module would). Any other row goes through
    the csv module (a quoted cell may span lines) and is hashed as its cells, by ``known.digest``. A row left unread
    comes as the pair of its last line and its key.

    When no input is known (a first load) and ``room`` tells how many rows the caller takes next, lines are read
    that many at a time: a block of lines without quotes, each with all its columns and not blank, comes as one
    :class:`Rows`, made with a few passes over the block; any other block is read row by row as above."""
    number = 0  # physical lines taken from the file
    pending: list[str] = []  # the line the csv module reads next
    current: Iterator[str] = iter(())  # the lines read row by row: a block's, or the file's

    def lines() -> Iterator[str]:  # what the csv module reads: the line already taken, then the next ones
        nonlocal number
        while True:
            if pending:
                yield pending.pop()
                continue
            text = next(current, "") or handle.readline()
            if not text:
                return
            number += 1
            yield text

    delimiter = config.delimiter
    reader = csv.reader(lines(), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise empty_file(file, system=system)
    header[0] = header[0].removeprefix("\ufeff")
    header = [column.strip() for column in header]
    width = len(header)
    hasher = known.line_hasher(_encode(["csv", delimiter, header])).copy
    keys, seen, digest = known.keys, known.seen, known.digest
    quote = '"'
    blocks = room is not None and not keys
    prefix = f"{file}:"
    while True:
        if blocks:
            block = list(islice(handle, min(room(), BLOCK)))  # type: ignore[misc]
            if not block:
                return
            rows = _plain_rows(block, delimiter, width)
            if rows is not None:
                first = number + 1
                number += len(block)
                hashes = []
                for text in block:
                    line_hash = hasher()
                    line_hash.update(text.encode())
                    hashes.append(line_hash.hexdigest())
                yield Rows(first, list(map(RawRecord, map(dict, map(zip, repeat(header), rows)),
                                           map(prefix.__add__, map(str, range(first, number + 1))), hashes)))
                continue
            current = iter(block)  # read row by row
        else:
            current = handle
        for text in current:  # a quoted row that spans lines takes the next ones from it too
            number += 1
            first = number
            hashed = None
            if quote not in text and "\x00" not in text:  # a whole row, whose cells are what lies between delimiters
                line_hash = hasher()
                line_hash.update(text.encode())
                hashed = line_hash.hexdigest()
                key = keys.get(hashed)
                if key is not None and key not in seen:
                    yield first, key  # a plain tuple: most rows of a net change are these
                    continue
                cells = text.rstrip("\r\n").split(delimiter)
            else:
                pending.append(text)
                cells = next(reader)
            if len(cells) == width and "".join(cells).strip():
                data = dict(zip(header, cells, strict=True))
                if hashed is None:
                    hashed = digest(_encode(data))
                    key = keys.get(hashed)
                    if key is not None and key not in seen:
                        yield number, key
                        continue
                yield Row(first, number, "", data, input_hash=hashed)
            elif not "".join(cells).strip():
                yield Row(first, number, delimiter.join(cells), blank=True)
            else:
                yield Row(first, number, delimiter.join(cells),
                          reason=f"expected {width} columns ({', '.join(header)}), got {len(cells)}")
        if not blocks:
            return


def _plain_rows(block: list[str], delimiter: str, width: int) -> list[list[str]] | None:
    """The cells of each line of ``block``, if each is a whole row (no quote, no NUL) of ``width`` cells that are
    not all blank; else ``None``."""
    text = "".join(block)
    if '"' in text or "\x00" in text:
        return None
    rows = list(map(str.split, map(str.rstrip, block, repeat("\r\n")), repeat(delimiter)))
    if list(map(len, rows)).count(width) != len(rows) or "" in map(str.strip, map("".join, rows)):
        return None
    return rows


_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder()


def read_jsonl(handle: TextIO, config: FilesConfig, file: str, system: str) -> Iterator[Row]:
    for number, text in enumerate(handle, start=1):
        raw = text.rstrip("\r\n")
        if number == 1:
            raw = raw.removeprefix("\ufeff")
        if not raw.strip():
            yield Row(number, number, raw, blank=True)
            continue
        try:
            value = _decoder.decode(raw)
        except msgspec.DecodeError as exc:
            yield Row(number, number, raw, reason=f"invalid JSON: {exc}")
            continue
        if isinstance(value, dict):
            yield Row(number, number, raw, value)
        else:
            yield Row(number, number, raw, reason=f"expected a JSON object, got {_json_type(value)}")


def read_fixed_width(handle: TextIO, config: FilesConfig, file: str, system: str) -> Iterator[Row]:
    columns = sorted(config.columns, key=lambda column: column.start)
    needed = columns[-1].start  # the last column must at least begin: trailing blanks are often trimmed
    for number, text in enumerate(handle, start=1):
        raw = text.rstrip("\r\n")
        if number == 1:
            raw = raw.removeprefix("\ufeff")
        if number <= config.skip_lines or not raw.strip():
            yield Row(number, number, raw, blank=True)
            continue
        if len(raw) < needed:
            last = columns[-1]
            yield Row(number, number, raw, reason=f"line has {len(raw)} characters, but column {last.name!r} "
                                                  f"starts at {last.start}")
            continue
        cells = {column.name: raw[column.start - 1:column.start - 1 + column.width] for column in columns}
        yield Row(number, number, raw, {name: value.strip() for name, value in cells.items()}
                  if config.strip else cells)


READERS = {"csv": read_csv, "jsonl": read_jsonl, "fixed_width": read_fixed_width}


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
