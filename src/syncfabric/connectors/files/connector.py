"""Reads CSV, JSON lines and fixed-width exports from a drop folder, page by page, with a cursor that survives a crash.

A cursor names the file (by name and fingerprint: size and modification time), the last line committed, and
whether the file is finished. A finished file is moved to the archive folder once the store has committed it
(:meth:`FilesConnector.acknowledge`); if the process dies before the move, the next run recognises the file by its
fingerprint and archives it without reading it again. So no file is read twice and none is lost.

Writing (``targets``): each batch of records of an entity becomes one CSV import file in the system's inbound
folder, for its import job to book. The job answers later, if at all: with a target's ``rejects``, the rows it
refused (its reject files) are read back as :class:`~syncfabric.connectors.base.Refusal` (file, line, key and the
job's reason), and each file is archived once they are stored.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from syncfabric.connectors.base import (
    Capability,
    Connector,
    OutboundRecord,
    Page,
    RawRecord,
    Refusal,
    RejectedRaw,
    WriteOutcome,
)
from syncfabric.connectors.files.configuration import FilesConfig, RejectFiles, RowGroup
from syncfabric.connectors.files.exceptions import translate_error
from syncfabric.connectors.files.formats import READERS, Rows, read_csv_known
from syncfabric.errors import PermanentError

_INCOMPLETE_SUFFIXES = (".tmp", ".part", ".partial", ".swp")


class FileCursor(msgspec.Struct, frozen=True, kw_only=True):
    file: str
    fingerprint: str
    line: int = 0
    """Physical line number of the last row included (0 = none yet)."""
    done: bool = False


def encode_cursor(cursor: FileCursor) -> str:
    return msgspec.json.encode(cursor).decode()


def decode_cursor(text: str | None) -> FileCursor | None:
    return msgspec.json.decode(text, type=FileCursor) if text else None


class FilesConnector(Connector):
    kind = "files"
    capabilities = Capability.READ_FULL | Capability.READ_CHANGES | Capability.WRITE
    config_type = FilesConfig
    config: FilesConfig
    page_size = 1000

    @classmethod
    def source_problems(cls, config: FilesConfig, source: str, mode: str) -> list[str]:
        if "/" in source or "\\" in source:
            return [f"source {source!r} must be a file name pattern inside the folder ({config.folder}), without "
                    "'/': point folder at the subfolder instead"]
        return []

    @property
    def folder(self) -> Path:
        return (self.base_dir / self.config.folder).resolve()

    @property
    def archive(self) -> Path:
        return self.folder / self.config.archive_folder

    def test_connection(self) -> None:
        if not self.folder.is_dir():
            raise PermanentError(f"drop folder {self.folder} does not exist", system=self.system)

    def pending_files(self, pattern: str) -> list[Path]:
        """Complete files matching ``pattern``, oldest first."""
        self.test_connection()
        found = []
        for path in self.folder.iterdir():
            name = path.name
            if not path.is_file() or name.startswith(".") or name.endswith(_INCOMPLETE_SUFFIXES):
                continue
            if not fnmatch.fnmatch(name, pattern):
                continue
            if self.config.marker_suffix and not path.with_name(name + self.config.marker_suffix).exists():
                continue
            found.append(path)
        return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        """Each pending file is one complete snapshot: its last page has ``complete=True``."""
        return self._read(entity, cursor)

    def read_full_known(self, entity: str, cursor: str | None, known: Any) -> Iterator[Page]:
        """``read_full``; CSV rows whose input is known are left unread (see ``formats.read_csv_known``), except in
        grouped sources (a record's input is several rows)."""
        skip = self.config.format == "csv" and entity not in self.config.groups
        return self._read(entity, cursor, known if skip else None)

    def read_changes(self, entity: str, since: str | None) -> Iterator[Page]:
        """Each pending file holds changed records only; same paging, same cursor."""
        return self._read(entity, since)

    def read_snapshot(self, entity: str) -> Iterator[Page]:
        """The newest complete file matching the pattern, pending or already archived: the export as the system
        last gave it. Read only, never archived."""
        candidates = self.pending_files(entity)
        if self.archive.is_dir():
            candidates += [path for path in self.archive.iterdir()
                           if path.is_file() and fnmatch.fnmatch(path.name, entity)]
        if not candidates:
            return iter(())
        newest = max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name))
        return self._read_file(newest, _fingerprint(newest), 0, group=self.config.groups.get(entity))

    def _read(self, pattern: str, cursor_text: str | None, known: Any = None) -> Iterator[Page]:
        cursor = decode_cursor(cursor_text)
        for path in self.pending_files(pattern):
            fingerprint = _fingerprint(path)
            start_after = 0
            if cursor is not None and cursor.file == path.name and cursor.fingerprint == fingerprint:
                if cursor.done:
                    self._archive(path)  # committed by an earlier run that stopped before archiving
                    continue
                start_after = cursor.line
            yield from self._read_file(path, fingerprint, start_after, known, group=self.config.groups.get(pattern))

    def _read_file(self, path: Path, fingerprint: str, start_after: int, known: Any = None,
                   group: RowGroup | None = None) -> Iterator[Page]:
        if group is not None:
            yield self._read_grouped(path, fingerprint, group)
            return
        records: list[RawRecord] = []
        problems: list[RejectedRaw] = []
        unchanged: list[tuple[str, int]] = []
        last_line = start_after
        read_rows = READERS[self.config.format]
        name = path.name

        def room() -> int:  # rows the page takes before it is full
            return self.page_size - len(records) - len(problems) - len(unchanged)

        try:
            with path.open(newline="", encoding=self.config.encoding) as handle:
                rows = (read_rows(handle, self.config, path.name, self.system) if known is None
                        else read_csv_known(handle, self.config, path.name, self.system, known, room))
                for row in rows:
                    kind = type(row)
                    if kind is tuple:  # (last line, key): a row left unread, its input known
                        line, key = row
                        if line <= start_after:
                            continue
                        last_line = line
                        unchanged.append((key, len(records)))
                    elif kind is Rows:  # rows of consecutive lines, one each
                        first, block = row
                        line = first + len(block) - 1
                        if line <= start_after:
                            continue
                        last_line = line
                        records.extend(block if first > start_after else block[start_after - first + 1:])
                    else:
                        if row.last <= start_after:
                            continue
                        last_line = row.last
                        if row.blank:
                            continue
                        location = f"{name}:{row.first}"
                        if row.data is None:
                            problems.append(RejectedRaw(raw=row.raw, location=location, reason=row.reason))
                        else:
                            records.append(RawRecord(row.data, location, row.input_hash))
                    if len(records) + len(problems) + len(unchanged) >= self.page_size:
                        yield Page(records, encode_cursor(FileCursor(file=path.name, fingerprint=fingerprint,
                                                                     line=last_line)), problems=problems,
                                   unchanged=unchanged)
                        records, problems, unchanged = [], [], []
        except (UnicodeDecodeError, csv.Error, OSError) as exc:
            raise translate_error(exc, system=self.system, file=path.name, line=last_line + 1,
                                  encoding=self.config.encoding) from exc
        done = FileCursor(file=path.name, fingerprint=fingerprint, line=last_line, done=True)
        yield Page(records, encode_cursor(done), complete=True, problems=problems, unchanged=unchanged)

    def _read_grouped(self, path: Path, fingerprint: str, group: RowGroup) -> Page:
        """The whole file as one page of grouped records (see ``RowGroup``), each located by its first and last
        line; a row without a ``by`` column's value is a problem of its own."""
        records: dict[tuple[str, ...], tuple[int, int, dict[str, Any], list[dict[str, Any]]]] = {}
        problems: list[RejectedRaw] = []
        last_line = 0
        name = path.name
        try:
            with path.open(newline="", encoding=self.config.encoding) as handle:
                for row in READERS[self.config.format](handle, self.config, name, self.system):
                    last_line = row.last
                    if row.blank:
                        continue
                    if row.data is None:
                        problems.append(RejectedRaw(raw=row.raw, location=f"{name}:{row.first}", reason=row.reason))
                        continue
                    key = tuple(str(row.data.get(column) or "").strip() for column in group.by)
                    if not all(key):
                        missing = [column for column, value in zip(group.by, key, strict=True) if not value]
                        problems.append(RejectedRaw(raw=msgspec.json.encode(row.data).decode(),
                                                    location=f"{name}:{row.first}",
                                                    reason=f"no value in {', '.join(missing)}: not part of a record"))
                        continue
                    first, _, head, rows = records.setdefault(key, (row.first, row.last, row.data, []))
                    rows.append(row.data)
                    records[key] = (first, row.last, head, rows)
        except (UnicodeDecodeError, csv.Error, OSError) as exc:
            raise translate_error(exc, system=self.system, file=name, line=last_line + 1,
                                  encoding=self.config.encoding) from exc
        raw = [RawRecord({**head, group.into: rows}, f"{name}:{first}" if first == last else f"{name}:{first}-{last}")
               for first, last, head, rows in records.values()]
        done = FileCursor(file=name, fingerprint=fingerprint, line=last_line, done=True)
        return Page(raw, encode_cursor(done), complete=True, problems=problems)

    def acknowledge(self, entity: str, cursor: str) -> None:
        decoded = decode_cursor(cursor)
        if decoded is None or not decoded.done:
            return
        path = self.folder / decoded.file
        if path.exists() and _fingerprint(path) == decoded.fingerprint:
            self._archive(path)

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        """One import file of the records (see ``targets``); deletions are refused, since an import file books
        and never cancels."""
        target = self.config.targets.get(entity)
        if target is None:
            raise PermanentError(f"no target for entity {entity!r}: give it under the connection's targets "
                                 f"({{{entity}: {{folder: inbound, prefix: ..., columns: [...]}}}})",
                                 system=self.system, entity=entity)
        outcome = WriteOutcome()
        rows = []
        for record in records:
            if record.payload is None:
                outcome.rejected[record.key] = f"{self.system} takes import files: a deletion is cancelled there"
                continue
            rows.append(record.payload)
            outcome.accepted.append(record.key)
        if rows:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            path = self.folder / target.folder / f"{target.prefix}{stamp}_{uuid.uuid4().hex[:6]}.csv"
            try:
                _write_csv(path, target.columns, rows, self.config.delimiter, self.config.encoding)
            except OSError as exc:
                raise translate_error(exc, system=self.system, file=str(path)) from exc
        return outcome

    def refusals(self, entity: str) -> list[Refusal]:
        """The rows of the target's complete reject files, oldest file first (see ``FileTarget.rejects``)."""
        target = self.config.targets.get(entity)
        if target is None or target.rejects is None:
            return []
        rejects, found = target.rejects, []
        folder = self.folder / rejects.folder
        if not folder.is_dir():
            return []
        files = [path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")
                 and not path.name.endswith(_INCOMPLETE_SUFFIXES)]
        for path in sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name)):
            try:
                with path.open(newline="", encoding=self.config.encoding) as handle:
                    for line, row in enumerate(csv.DictReader(handle, delimiter=self.config.delimiter), start=2):
                        found.append(self._refusal(rejects, path.name, line, row))
            except (UnicodeDecodeError, csv.Error, OSError) as exc:
                raise translate_error(exc, system=self.system, file=path.name,
                                      encoding=self.config.encoding) from exc
        return found

    def _refusal(self, rejects: RejectFiles, name: str, line: int, row: dict[str, str | None]) -> Refusal:
        key = (row.get(rejects.key_column) or "").strip()
        where = f"{name}:{line}"
        if rejects.line_column and (row.get(rejects.line_column) or "").strip():
            where = f"{name}:{row[rejects.line_column].strip()}"  # type: ignore[union-attr]
        reason = (row.get(rejects.reason_column) or "").strip() or f"no {rejects.reason_column} given"
        return Refusal(key, f"{self.system} refused it on import: {where} {rejects.key_column} {key or '(empty)'}: "
                            f"{reason}", name)

    def forget_refusals(self, entity: str, sources: Sequence[str]) -> None:
        target = self.config.targets.get(entity)
        if target is None or target.rejects is None:
            return
        folder = self.folder / target.rejects.folder
        archive = folder / target.rejects.archive
        for name in dict.fromkeys(sources):
            path = folder / name
            if not path.exists():
                continue  # archived before
            archive.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(path, archive / name)
            except OSError as exc:
                raise translate_error(exc, system=self.system, file=f"cannot archive {name}") from exc

    def _archive(self, path: Path) -> None:
        self.archive.mkdir(parents=True, exist_ok=True)
        target = self.archive / path.name
        if target.exists():
            target = self.archive / f"{path.stem}.{path.stat().st_mtime_ns}{path.suffix}"
        try:
            shutil.move(os.fspath(path), os.fspath(target))
            if self.config.marker_suffix:
                marker = path.with_name(path.name + self.config.marker_suffix)
                if marker.exists():
                    marker.unlink()
        except OSError as exc:
            raise translate_error(exc, system=self.system, file=f"cannot archive {path.name}") from exc


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]], delimiter: str, encoding: str) -> None:
    """Write the file under a ``.part`` name and rename it into place: the importer never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with partial.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(name) is None else row[name] for name in columns])
    os.replace(partial, path)


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"
