"""Mapping impact: what the estate's mappings, as the file now says, would change in the store. A dry run.

Each stored record keeps the raw record its current version was mapped from (``Store.sources``). For every inbound
flow, those raw records go through the flow's current mapping and the entity's current rules
(:func:`~syncfabric.flows.inbound.map_and_check`, the path of fresh input and of replay), and the result is
compared with the stored canonical payload: unchanged, changed (field by field), given another key, or now
rejected. The flow's open quarantine entries go through the same path: those the mapping would now accept are
the ones ``quarantine replay`` would deliver. Nothing is written.

Records stored before the store kept raw records have nothing to re-map; they are counted as not checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from rich.table import Table

from syncfabric.config.schema import Estate
from syncfabric.flows.inbound import Outcome, estate_field_map, map_and_check
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet
from syncfabric.store import QuarantineEntry, SourceRecord, Store

BATCH = 1000
"""Records re-mapped at a time: references to master data are read once per batch, as inbound does per page."""
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "—"})()
"""A field one side of a comparison does not have."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str
    old: Any
    new: Any


@dataclass(slots=True)
class Sample:
    """One record the current mapping treats differently, as shown in the report."""

    flow: str
    key: str
    kind: str
    """``changed`` (a stored record), ``rejected`` (a stored record it would reject), ``accepted`` (a quarantined
    record it would deliver), ``still_rejected`` (a quarantined record it would reject for other reasons)."""
    changes: list[FieldChange] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    new_key: str = ""
    """When the current mapping gives the record another key."""
    quarantine_id: int | None = None


@dataclass(slots=True)
class FlowImpact:
    """What one inbound flow's current mapping would change."""

    flow: str
    mapping: str
    entity: str
    version: str
    """The mapping version as the estate file now says (with its code maps and unit table)."""
    stored_versions: Counter[str] = field(default_factory=Counter)
    """Mapping versions that produced the stored records checked, with how many each."""
    checked: int = 0
    unchanged: int = 0
    changed: int = 0
    rejected: int = 0
    same_version_changed: int = 0
    """Changed or rejected records that were stored by the very version the estate now names."""
    quarantined: int = 0
    accepted: int = 0
    samples: list[Sample] = field(default_factory=list)

    @property
    def version_not_raised(self) -> bool:
        return self.same_version_changed > 0


@dataclass(slots=True)
class Impact:
    flows: list[FlowImpact] = field(default_factory=list)
    unchecked: dict[str, int] = field(default_factory=dict)
    """Per entity, when every inbound flow is checked: live records not checked, having no raw record kept (stored
    before raw records were, by a flow with ``keep_raw: false``, or by a flow the estate no longer has)."""

    @property
    def changes(self) -> int:
        return sum(f.changed + f.rejected + f.accepted for f in self.flows)

    def summary(self) -> str:
        changed, rejected, accepted = (sum(getattr(f, name) for f in self.flows)
                                       for name in ("changed", "rejected", "accepted"))
        return (f"{changed:,} stored record(s) would change, {rejected:,} would be rejected; {accepted:,} "
                "quarantined record(s) would be accepted. Nothing was written.")


def mapping_impact(
    store: Store, estate: Estate, *, flows: Sequence[str] | None = None, samples: int = 20,
    progress: Callable[[int], None] | None = None,
) -> Impact:
    """Re-map the stored raw records and the open quarantine entries of inbound flows with the estate's current
    mappings and rules; report what would change. ``samples`` bounds the records shown per flow."""
    impact = Impact()
    names = list(flows) if flows else [n for n, f in estate.flows.items() if f.direction == "inbound" and f.mapping]
    entities: set[str] = set()
    for name in names:
        flow = estate.flows.get(name)
        if flow is None or flow.direction != "inbound" or flow.mapping is None:
            from syncfabric.errors import ConfigError

            raise ConfigError([f"{name!r} is not an inbound flow of this estate"])
        field_map = estate_field_map(store, estate, flow.mapping)
        entity = field_map.entity_cls.entity
        entities.add(entity)
        result = FlowImpact(flow=name, mapping=flow.mapping, entity=entity, version=field_map.version)
        rules = RuleSet.for_entity(estate.rules, entity)
        for batch in _batches(store.sources(entity, flow=name)):
            _check_stored(result, batch, field_map, rules, store, samples)
            if progress is not None:
                progress(len(batch))
        entries = store.quarantine(flow=name)
        for start in range(0, len(entries), BATCH):
            _check_quarantined(result, entries[start:start + BATCH], field_map, rules, store, samples)
            if progress is not None:
                progress(len(entries[start:start + BATCH]))
        impact.flows.append(result)
    if not flows:  # every inbound flow was checked: what the entity holds beyond that has no raw record to re-map
        for entity in sorted(entities):
            missing = store.count(entity) - sum(f.checked for f in impact.flows if f.entity == entity)
            if missing > 0:
                impact.unchecked[entity] = missing
    return impact


def _batches(sources: Iterable[SourceRecord]) -> Iterator[list[SourceRecord]]:
    batch: list[SourceRecord] = []
    for source in sources:
        batch.append(source)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _outcomes(raws: Sequence[str], field_map: FieldMap, rules: RuleSet, store: Store) -> list[Outcome]:
    """One outcome per raw record, in order: a raw form that is not a JSON object is rejected with that reason."""
    rows: list[dict[str, Any]] = []
    places: list[int] = []
    outcomes: list[Outcome | None] = []
    for index, raw in enumerate(raws):
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict):
            rows.append(data)
            places.append(index)
            outcomes.append(None)
        else:
            outcomes.append(Outcome(reasons=["the raw record is not a JSON object"]))
    for index, outcome in zip(places, map_and_check(rows, field_map, rules, store), strict=True):
        outcomes[index] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


def _check_stored(result: FlowImpact, batch: list[SourceRecord], field_map: FieldMap, rules: RuleSet,
                  store: Store, samples: int) -> None:
    for source, outcome in zip(batch, _outcomes([s.raw for s in batch], field_map, rules, store), strict=True):
        result.checked += 1
        result.stored_versions[source.mapping_version] += 1
        if outcome.record is None:
            result.rejected += 1
            sample = Sample(result.flow, source.key, "rejected", reasons=outcome.reasons)
        else:
            payload = msgspec.json.encode(outcome.record)
            if payload == source.payload and outcome.key == source.key:
                result.unchanged += 1
                continue
            result.changed += 1
            sample = Sample(result.flow, source.key, "changed", changes=field_changes(source.payload, payload),
                            new_key=outcome.key if outcome.key != source.key else "")
        if source.mapping_version == result.version:
            result.same_version_changed += 1
        if len(result.samples) < samples:
            result.samples.append(sample)


def _check_quarantined(result: FlowImpact, entries: list[QuarantineEntry], field_map: FieldMap, rules: RuleSet,
                       store: Store, samples: int) -> None:
    outcomes = _outcomes([e.payload for e in entries], field_map, rules, store)
    stored = store.get_many(result.entity, [o.key for o in outcomes if o.record is not None])
    for entry, outcome in zip(entries, outcomes, strict=True):
        result.quarantined += 1
        if outcome.record is None:
            if sorted(outcome.reasons) != sorted(entry.reasons) and len(result.samples) < samples:
                result.samples.append(Sample(result.flow, outcome.key or entry.record_key, "still_rejected",
                                             reasons=outcome.reasons, quarantine_id=entry.id))
            continue
        result.accepted += 1
        if len(result.samples) >= samples:
            continue
        row = stored.get(outcome.key)
        notes = []
        if row is not None and row.updated_at > entry.created_at:
            notes.append(f"{result.entity} {outcome.key} has a newer version (v{row.version}) than this entry: "
                         "replay refuses it without --force")
        old = row.payload if row is not None else None
        result.samples.append(Sample(result.flow, outcome.key, "accepted", quarantine_id=entry.id, reasons=notes,
                                     changes=field_changes(old, msgspec.json.encode(outcome.record))))


def field_changes(old: bytes | None, new: bytes) -> list[FieldChange]:
    """The fields that differ between two canonical payloads, by JSON path, in the order of the new record.
    Without an old payload (a new record), the new record's fields that have a value."""
    before = dict(flatten(msgspec.json.decode(old))) if old is not None else {}
    after = dict(flatten(msgspec.json.decode(new)))
    if old is None:
        after = {path: value for path, value in after.items() if value not in (None, [], {})}
    changes = [FieldChange(path, before.get(path, ABSENT), value) for path, value in after.items()
               if before.get(path, ABSENT) != value]
    changes += [FieldChange(path, value, ABSENT) for path, value in before.items() if path not in after]
    return changes


def flatten(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for name, child in value.items():
            yield from flatten(child, f"{path}.{name}")
    elif isinstance(value, list) and value:
        for index, child in enumerate(value):
            yield from flatten(child, f"{path}[{index}]")
    else:
        yield path, value


def impact_tables(impact: Impact) -> tuple[Table, list[str], Table, list[str]]:
    """The report as the command line shows it: a summary per flow, the mapping versions compared, the sample
    records field by field, and notes."""
    summary = Table("flow", "mapping", "checked", "unchanged", "would change", "would reject", "quarantined",
                    "would accept", title="Mapping impact (dry run)")
    versions: list[str] = []
    for f in impact.flows:
        summary.add_row(f.flow, f.mapping, f"{f.checked:,}", f"{f.unchanged:,}",
                        f"[yellow]{f.changed:,}[/]" if f.changed else "0",
                        f"[red]{f.rejected:,}[/]" if f.rejected else "0", f"{f.quarantined:,}",
                        f"[green]{f.accepted:,}[/]" if f.accepted else "0")
        stored = ", ".join(f"{v or 'no version'} ({n:,})" for v, n in f.stored_versions.most_common()) or "nothing"
        versions.append(f"{f.flow}: mapping now {f.version}; stored by {stored}")
    shown = Table("flow", "record", "what", "field", "stored", "new", title="Samples")
    what = {"changed": "[yellow]would change[/]", "rejected": "[red]would reject[/]",
            "accepted": "[green]would accept[/]", "still_rejected": "would still reject"}
    for f in impact.flows:
        for sample in f.samples:
            record = sample.key if sample.quarantine_id is None else f"{sample.key} (quarantine {sample.quarantine_id})"
            if sample.new_key:
                shown.add_row(f.flow, record, what[sample.kind], "key", sample.key, sample.new_key)
            for change in sample.changes:
                shown.add_row(f.flow, record, what[sample.kind], change.path, _cell(change.old), _cell(change.new))
            for reason in sample.reasons:
                shown.add_row(f.flow, record, what[sample.kind], "", "", reason)
    notes = [f"[yellow]warning:[/] {f.same_version_changed:,} record(s) of {f.flow} were stored by {f.version}, the "
             f"version the estate names now, and would change: if mapping {f.mapping} changed, raise its version "
             "so that lineage tells them apart" for f in impact.flows if f.version_not_raised]
    notes += [f"[yellow]note:[/] {n:,} stored {entity} record(s) have no raw record kept and were not checked"
              for entity, n in impact.unchecked.items()]
    return summary, versions, shown, notes


def _cell(value: Any) -> str:
    if value is ABSENT:
        return "—"
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()
