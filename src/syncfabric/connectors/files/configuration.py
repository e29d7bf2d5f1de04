"""Configuration of a drop-folder system."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

import msgspec


class FixedColumn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    """The field name the column's text is given as (what mappings refer to)."""
    start: Annotated[int, msgspec.Meta(ge=1)]
    """Position of the column's first character on the line, counting from 1 (as record layouts print it)."""
    width: Annotated[int, msgspec.Meta(ge=1)]
    """Number of characters of the column."""


class RowGroup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One record written over several rows, as a legacy BOM export writes a bill of material: a row per component,
    the parent's columns repeated on each. The rows of a file with the same values in ``by`` become one raw
    record: the first row's fields, and the list of all its rows (each with every column) under ``into``, which a
    mapping reads with ``each:``. The whole file is read before any record is given."""

    by: Annotated[list[str], msgspec.Meta(min_length=1)]
    """The columns that say which record a row belongs to (``[PARENT_ITEM, SITE]``)."""
    into: str = "ROWS"
    """The field that holds the record's rows."""


class RejectFiles(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the system's import job puts the rows it refused, and how to read them: CSV files (the target's
    ``delimiter`` and ``encoding``) with the refused row and the reason. The outbound flow reads them back at the
    start of each run into dead letters of the keys, and moves each file it read into ``archive`` below it."""

    folder: str
    """The reject folder, relative to the system's ``folder`` (``inbound/rejected``)."""
    key_column: str
    """The column that holds the record's key as written (``ORDER_REF``: the planned order id)."""
    reason_column: str = "REASON"
    """The column with the import's reason."""
    line_column: str | None = None
    """The column with the row's line in the import file, when the job gives it; otherwise the dead letter names
    the line of the reject file."""
    archive: str = "archive"
    """Where reject files go once their refusals are stored; relative to ``folder``."""


class FileTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the records of one canonical entity are written for the system's import job to pick up."""

    folder: str
    """The system's inbound folder, relative to ``folder`` (``inbound``)."""
    prefix: str
    """File names are ``<prefix><UTC time>_<batch>.csv`` (``orders_20261103T180000_1a2b3c.csv``)."""
    columns: Annotated[list[str], msgspec.Meta(min_length=1)]
    """The CSV header, in order; each record (shaped by the flow's outbound ``mapping:``) gives these fields."""
    rejects: RejectFiles | None = None
    """The import job's reject files, read back into dead letters (``{folder: inbound/rejected, key_column:
    ORDER_REF}``); without it, refusals stay in the system."""


class FilesConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    folder: str
    """The drop folder the system writes its exports into; relative to the estate file's folder."""
    format: Literal["csv", "jsonl", "fixed_width"] = "csv"
    """File format: ``csv`` (a header row names the columns), ``jsonl`` (one JSON object per line) or
    ``fixed_width`` (columns at fixed character positions, given in ``columns``)."""
    delimiter: str = ","
    """CSV field delimiter."""
    encoding: str = "utf-8"
    """Text encoding of the files (``utf-8``, ``cp1252``, ``latin-1``, ...)."""
    marker_suffix: str | None = None
    """How a file is known to be complete. If set (e.g. ``.done``), a file is read only once a marker file
    ``<name><suffix>`` exists beside it, and the marker is archived with it. Without it, files are taken as
    complete when they appear, so the writer must write elsewhere (or under a ``.tmp``/``.part`` name) and rename
    them into place atomically."""
    archive_folder: str = "archive"
    """Where read files are moved after their records are committed; relative to ``folder``."""
    columns: list[FixedColumn] = []
    """fixed_width: the record layout, one entry per column (``{name: ITEM_NO, start: 1, width: 18}``)."""
    skip_lines: Annotated[int, msgspec.Meta(ge=0)] = 0
    """fixed_width: lines at the top of each file that are not records (a title, a ruler)."""
    strip: bool = True
    """fixed_width: remove the padding spaces around each column's text."""
    groups: dict[str, RowGroup] = {}
    """Per source (a flow's file name pattern, ``boms_*.csv``): records written over several rows, grouped into
    one (see ``RowGroup``)."""
    targets: dict[str, FileTarget] = {}
    """Outbound: per canonical entity, the import file its records are written to (CSV with ``delimiter`` and
    ``encoding``, one file per batch, renamed into place complete). The system books them; a batch sent again is
    a second file with the same records, which an import that books by reference books once."""

    def __post_init__(self) -> None:
        if self.format == "fixed_width":
            if not self.columns:
                raise ValueError("format fixed_width needs columns: [{name, start, width}, ...]")
            ordered = sorted(self.columns, key=lambda column: column.start)
            for before, after in itertools.pairwise(ordered):
                if before.start + before.width > after.start:
                    raise ValueError(f"fixed_width columns {before.name!r} and {after.name!r} overlap")
            names = [column.name for column in self.columns]
            if len(set(names)) != len(names):
                raise ValueError("fixed_width column names must be unique")
        elif self.columns:
            raise ValueError(f"columns are for format fixed_width, not {self.format}")
        if self.format == "csv" and len(self.delimiter) != 1:
            raise ValueError("delimiter must be one character")
