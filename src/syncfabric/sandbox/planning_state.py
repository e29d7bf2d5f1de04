"""What the simulated planning platform holds: its records, their write versions, and what it received.

Writes are idempotent and ordered per key by version, without any request-level idempotency key:

- A writer may tag each record with ``_version`` (a non-negative integer) and ``_stream`` (a name; ``""`` when
  absent). The platform remembers, per record key, the last version applied from each stream.
- A version newer than the remembered one is applied. The same version again is a no-op (effect ``duplicate``),
  so a re-sent batch changes nothing. An older version is ignored (effect ``stale``), so a late or retried write
  never overwrites a newer one. Both are reported as ``ok``: the platform already holds that state or a newer one.
- Streams keep their orders apart. syncfabric uses the canonical entity as the stream, so safety stock (from
  ``item_location``) and on-hand (from ``inventory_balance``) land on the same buffer with independent versions.
- A deletion keeps its key's versions as a tombstone: an older upsert that arrives late does not bring the record
  back, a newer one re-creates it.
- Records without ``_version`` are applied as they come (last write wins), as for any plain frePPLe client.

Writes merge: the fields given replace the stored ones, the others are kept. A write whose merged record equals
the stored one is ``unchanged`` and does not touch ``lastmodified``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from syncfabric.sandbox.planning_entities import ENTITIES, EntitySpec, dependents, normalize

Key = tuple[str, ...]
WriteMode = Literal["create", "upsert", "update"]
EFFECTIVE = ("created", "updated", "deleted", "cascaded")
JOURNAL_LIMIT = 200_000
"""Effects that changed what the platform holds."""


@dataclass
class Stored:
    fields: dict[str, Any]
    versions: dict[str, int]
    lastmodified: str

    def view(self) -> dict[str, Any]:
        shown = {**self.fields, "lastmodified": self.lastmodified}
        if self.versions:
            shown["_versions"] = dict(self.versions)
        return shown


class PlanningState:
    """Records per entity and key, tombstones, and counters; saved to ``state_file`` after every write."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._file = state_file
        self._clear()
        if state_file is not None and state_file.exists():
            self._load(json.loads(state_file.read_text(encoding="utf-8")))

    def _clear(self) -> None:
        self.records: dict[str, dict[Key, Stored]] = {name: {} for name in ENTITIES}
        self.tombstones: dict[str, dict[Key, dict[str, int]]] = {name: {} for name in ENTITIES}
        self.write_requests = 0
        self.effects: dict[str, Counter[str]] = defaultdict(Counter)
        self.journal: list[dict[str, Any]] = []

    # ---- writes -------------------------------------------------------------------------------------------

    def write(self, spec: EntitySpec, items: list[Any], mode: WriteMode,
              refuse: Collection[str] = ()) -> list[dict[str, Any]]:
        """Create (POST), upsert (PUT) or update (PATCH) each record; one outcome per record, in order.
        Records whose key (joined by ``/``) is in ``refuse`` are rejected (an injected fault)."""
        with self._lock:
            self.write_requests += 1
            results = [self._outcome(spec, index, item, lambda k, b: self._put(spec, k, b, mode), refuse)
                       for index, item in enumerate(items)]
            self._save()
            return results

    def delete(self, spec: EntitySpec, items: list[Any], refuse: Collection[str] = ()) -> list[dict[str, Any]]:
        """Delete each record named by its key fields; deleting an absent key is ``ok`` (effect ``absent``)."""
        with self._lock:
            self.write_requests += 1
            results = [self._outcome(spec, index, item, lambda k, b: self._delete(spec, k, b), refuse)
                       for index, item in enumerate(items)]
            self._save()
            return results

    def _outcome(self, spec: EntitySpec, index: int, item: Any, apply: Any,
                 refuse: Collection[str] = ()) -> dict[str, Any]:
        key: Key | None = None
        try:
            if not isinstance(item, dict):
                raise ValueError("record must be a JSON object")
            body = dict(item)
            key = _key(spec, body)
            if refuse and "/".join(key) in refuse:
                raise ValueError(f"{spec.name} {'/'.join(key)} refused (injected fault)")
            effect = apply(key, body)
        except ValueError as exc:
            self.effects[spec.name]["rejected"] += 1
            return {"index": index, "key": _key_view(spec, key), "status": "error", "error": str(exc)}
        self.effects[spec.name][effect] += 1
        if isinstance(item.get("_version"), int) and len(self.journal) < JOURNAL_LIMIT:
            self.journal.append({"entity": spec.name, "key": "/".join(key), "stream": str(item.get("_stream") or ""),
                                 "version": item["_version"], "effect": effect})
        return {"index": index, "key": _key_view(spec, key), "status": "ok", "effect": effect}

    def _put(self, spec: EntitySpec, key: Key, body: dict[str, Any], mode: WriteMode) -> str:
        stream, version = _marks(body)
        body.pop("lastmodified", None)  # read-only fields, so that a record read back can be written back
        body.pop("_versions", None)
        given = normalize(spec, body)
        fields = {**dict(zip(spec.key, key, strict=True)), **{n: v for n, v in given.items() if n not in spec.key}}
        table = self.records[spec.name]
        existing = table.get(key)
        versions = existing.versions if existing else self.tombstones[spec.name].get(key, {})
        if (skip := _gate(versions, stream, version)) is not None:
            return skip
        if mode == "create" and existing:
            raise ValueError(f"{spec.name} {'/'.join(key)} already exists")
        if mode == "update" and not existing:
            raise ValueError(f"{spec.name} {'/'.join(key)} not found")
        merged = {**(existing.fields if existing else {}), **fields}
        for name in spec.measures:
            if name in fields:
                before = (existing.fields.get(name) if existing else None) or {}
                merged[name] = {m: v for m, v in {**before, **(fields[name] or {})}.items() if v is not None}
        missing = [name for name in spec.required if merged.get(name) in (None, "")]
        if missing:
            raise ValueError(f"required: {', '.join(missing)}")
        for name, value in fields.items():
            target = spec.references.get(name)
            if target and value not in (None, "") and (value,) not in self.records[target]:
                raise ValueError(f"{name}: unknown {target} {value!r}")
        new_versions = {**versions, stream: version} if version is not None else dict(versions)
        if existing and merged == existing.fields:
            existing.versions = new_versions
            return "unchanged"
        table[key] = Stored(merged, new_versions, _now())
        self.tombstones[spec.name].pop(key, None)
        return "updated" if existing else "created"

    def _delete(self, spec: EntitySpec, key: Key, body: dict[str, Any]) -> str:
        stream, version = _marks(body)
        extra = sorted(set(body) - set(spec.key))
        if extra:
            raise ValueError(f"a deletion names only the key ({', '.join(spec.key)}); got {', '.join(extra)}")
        existing = self.records[spec.name].get(key)
        versions = existing.versions if existing else self.tombstones[spec.name].get(key, {})
        if (skip := _gate(versions, stream, version)) is not None:
            return skip
        self.tombstones[spec.name][key] = {**versions, stream: version} if version is not None else dict(versions)
        if existing is None:
            return "absent"
        del self.records[spec.name][key]
        self._cascade(spec, key)
        return "deleted"

    def _cascade(self, spec: EntitySpec, key: Key) -> None:
        """As frePPLe: records referencing a deleted one go too, except hierarchy children, which lose their owner."""
        if len(key) != 1:
            return
        for entity, name in dependents(spec.name):
            for dep_key, dep in list(self.records[entity].items()):
                if dep.fields.get(name) != key[0]:
                    continue
                if name == "owner":
                    dep.fields["owner"] = None
                    dep.lastmodified = _now()
                    self.effects[entity]["updated"] += 1
                    continue
                del self.records[entity][dep_key]
                self.tombstones[entity][dep_key] = dict(dep.versions)
                self.effects[entity]["cascaded"] += 1
                self._cascade(ENTITIES[entity], dep_key)

    # ---- reads --------------------------------------------------------------------------------------------

    def query(self, spec: EntitySpec, filters: dict[str, str]) -> list[dict[str, Any]]:
        """Records in key order matching every filter, with frePPLe's lookups: ``field=value`` (exact),
        ``field__in=a,b``, ``field__contains=text`` and ``lastmodified__gte|gt|lte|lt=<ISO timestamp>``."""
        tests: list[Callable[[Stored], bool]] = []
        for name, value in filters.items():
            field_name, _, op = name.partition("__")
            if field_name == "lastmodified" and op in ("gte", "gt", "lte", "lt"):
                tests.append(_since(op, _parse_time(value)))
            elif field_name in spec.writable and op in ("", "in", "contains"):
                tests.append(_field_test(field_name, op, value))
            else:
                raise ValueError(f"unsupported filter {name!r}")
        with self._lock:
            rows = [self.records[spec.name][key] for key in sorted(self.records[spec.name])]
            return [row.view() for row in rows if all(test(row) for test in tests)]

    def received(self) -> dict[str, Any]:
        """What writers sent: write requests, effective record changes and every outcome, per entity."""
        with self._lock:
            return {
                "write_requests": self.write_requests,
                "records": {e: sum(c[x] for x in EFFECTIVE) for e, c in sorted(self.effects.items())},
                "effects": {e: dict(c) for e, c in sorted(self.effects.items())},
                "held": {e: len(rows) for e, rows in self.records.items() if rows},
            }

    def journal_entries(self) -> list[dict[str, Any]]:
        """Every outcome of a versioned record (entity, key, stream, version, effect), in the order applied; kept in
        memory only, for the first :data:`JOURNAL_LIMIT` records."""
        with self._lock:
            return list(self.journal)

    def reset(self) -> None:
        with self._lock:
            self._clear()
            self._save()

    # ---- persistence --------------------------------------------------------------------------------------

    def _save(self) -> None:
        if self._file is None:
            return
        document = {
            "records": {e: [{"fields": s.fields, "versions": s.versions, "lastmodified": s.lastmodified}
                            for s in rows.values()] for e, rows in self.records.items() if rows},
            "tombstones": {e: [{"key": list(k), "versions": v} for k, v in rows.items()]
                           for e, rows in self.tombstones.items() if rows},
            "write_requests": self.write_requests,
            "effects": self.effects,
        }
        self._file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._file.with_name(self._file.name + ".tmp")
        temporary.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self._file)

    def _load(self, document: dict[str, Any]) -> None:
        for entity, rows in document.get("records", {}).items():
            spec = ENTITIES[entity]
            for row in rows:
                key = tuple(row["fields"][name] for name in spec.key)
                self.records[entity][key] = Stored(row["fields"], row["versions"], row["lastmodified"])
        for entity, rows in document.get("tombstones", {}).items():
            for row in rows:
                self.tombstones[entity][tuple(row["key"])] = row["versions"]
        self.write_requests = document.get("write_requests", 0)
        for entity, counts in document.get("effects", {}).items():
            self.effects[entity] = Counter(counts)


def _key(spec: EntitySpec, body: dict[str, Any]) -> Key:
    parts = []
    for name in spec.key:
        value = body.get(name)
        if value in (None, "") and name in spec.optional_key:
            parts.append("")
        elif value in (None, ""):
            raise ValueError(f"required: {name}")
        elif not isinstance(value, str):
            raise ValueError(f"{name} must be text, got {value!r}")
        else:
            parts.append(value)
    return tuple(parts)


def _key_view(spec: EntitySpec, key: Key | None) -> dict[str, str] | None:
    return dict(zip(spec.key, key, strict=True)) if key is not None else None


def _marks(body: dict[str, Any]) -> tuple[str, int | None]:
    """Take the write marks ``_stream`` and ``_version`` out of a record."""
    stream = body.pop("_stream", None) or ""
    version = body.pop("_version", None)
    if not isinstance(stream, str):
        raise ValueError(f"_stream must be text, got {stream!r}")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise ValueError(f"_version must be a non-negative integer, got {version!r}")
    return stream, version


def _gate(versions: dict[str, int], stream: str, version: int | None) -> str | None:
    """None to apply the write; otherwise the effect of skipping it (``duplicate`` or ``stale``)."""
    if version is None:
        return None
    last = versions.get(stream)
    if last is None or version > last:
        return None
    return "duplicate" if version == last else "stale"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _parse_time(text: str) -> dt.datetime:
    if "T" in text and text.count(" ") == 1:
        text = text.replace(" ", "+")  # an unescaped "+01:00" in a query string arrives as " 01:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO timestamp: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _since(op: str, bound: dt.datetime) -> Callable[[Stored], bool]:
    def test(row: Stored) -> bool:
        moment = _parse_time(row.lastmodified)
        return {"gte": moment >= bound, "gt": moment > bound, "lte": moment <= bound, "lt": moment < bound}[op]

    return test


def _field_test(name: str, op: str, text: str) -> Callable[[Stored], bool]:
    def test(row: Stored) -> bool:
        value = row.fields.get(name)
        shown = "" if value is None else str(value)
        if op == "contains":
            return text in shown
        return shown in text.split(",") if op == "in" else shown == text

    return test
