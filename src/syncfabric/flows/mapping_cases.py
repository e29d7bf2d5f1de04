"""Mapping tests as data: YAML files of raw input records, each with the canonical record it must give or the
problems it must be rejected with. ``syncfabric mapping test`` runs them; so does the test suite.

.. code-block:: yaml

    mapping: legacy-inventory            # a mapping of the estate
    time_zones: {P1: Europe/Berlin}      # optional: location time zones, for date-times with location:
    cases:
      - name: a balance in its base unit
        input: {ITEM_NO: A, SITE: P1, ON_HAND: "10", UOM: EA, SNAPSHOT_UTC: "2025-03-01T06:00:00Z"}
        expect: {item_id: A, location_id: P1, on_hand: {value: "10", unit: EA}, as_of: "2025-03-01T06:00:00Z"}
      - name: negative stock is refused
        input: {ITEM_NO: B, SITE: P1, ON_HAND: "-5", UOM: EA, SNAPSHOT_UTC: "2025-03-01T06:00:00Z"}
        errors:
          - {path: $.on_hand, message: must be ≥ 0}

A case runs the mapping with the estate's units and code maps, then the entity's rules that need no stored data
(``required``, ``range``, ``custom``; ``reference`` and ``item_location`` read master data from the store and are
left out). ``expect`` is the whole canonical record: a field it leaves out must come out empty (absent, null or an
empty list). ``errors`` lists every problem expected, each matched by its path (exactly) and its message (as a
part of the reported one); a problem reported but not expected fails the case too.

A case of an outbound mapping (``direction: outbound``) gives a canonical record as ``input`` and the target's
record as ``expect``; the target system's ids its ``xref`` specs look up are given per entity, canonical key →
external id, in ``xref: {item: {FG-1: MAT-FG-1}}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from syncfabric.config._findings import JsonPath, format_path
from syncfabric.config._yaml import Document, parse
from syncfabric.config.schema import Estate
from syncfabric.errors import ConfigError
from syncfabric.flows.impact import flatten
from syncfabric.flows.inbound import map_and_check
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet

STORE_FREE_RULES = ("required", "range", "custom")
"""Rule kinds a mapping test checks: those that do not read master data from the store."""


@dataclass(frozen=True, slots=True)
class ExpectedError:
    message: str
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Case:
    file: Path
    line: int
    mapping: str
    name: str
    input: dict[str, Any]
    expect: dict[str, Any] | None
    errors: tuple[ExpectedError, ...]
    time_zones: dict[str, str]
    xref: dict[str, dict[str, str]] = field(default_factory=dict)
    """Outbound: the target's ids per entity, canonical key → external id."""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(slots=True)
class CaseResult:
    case: Case
    failures: list[str] = field(default_factory=list)
    """What differs, one readable line each: ``$.on_hand.value: expected '10', got '5'``."""

    @property
    def passed(self) -> bool:
        return not self.failures


def find_files(paths: Sequence[Path], default: Path) -> list[Path]:
    """The fixture files named (a file, or a folder of ``*.yaml``), or those of the ``default`` folder."""
    found: list[Path] = []
    for path in paths or [default]:
        if path.is_dir():
            found.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        elif path.exists():
            found.append(path)
        else:
            raise ConfigError([f"{path}: no such mapping test file or folder"])
    if not found:
        raise ConfigError([f"no mapping tests (*.yaml) in {', '.join(str(p) for p in paths or [default])}"])
    return found


def load_cases(path: Path, estate: Estate) -> list[Case]:
    """The cases of one fixture file; ConfigError lists every problem with its file, line and path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    document, findings = parse(text)
    problems = [_at(path, document, f.path or (), f.message) for f in findings]
    if document is None or not isinstance(document.data, dict):
        raise ConfigError(problems or [f"{path}:1:1: expected a mapping with `mapping:` and `cases:`"])
    data = document.data
    mapping = data.get("mapping")
    if mapping not in estate.mappings:
        problems.append(_at(path, document, ("mapping",), f"unknown mapping {mapping!r} (mappings: "
                                                          f"{', '.join(sorted(estate.mappings)) or 'none'})"))
    zones = data.get("time_zones") or {}
    if not isinstance(zones, dict) or not all(isinstance(v, str) for v in zones.values()):
        problems.append(_at(path, document, ("time_zones",), "time_zones maps location ids to IANA time zones"))
        zones = {}
    xref = data.get("xref") or {}
    if not isinstance(xref, dict) or not all(isinstance(v, dict) for v in xref.values()):
        problems.append(_at(path, document, ("xref",), "xref maps entities to {canonical key: external id}"))
        xref = {}
    for key in data:
        if key not in ("mapping", "time_zones", "xref", "cases"):
            problems.append(_at(path, document, (key,), f"unknown key {key!r} (keys: mapping, time_zones, xref, "
                                                        "cases)"))
    raw_cases = data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        problems.append(_at(path, document, ("cases",), "cases: a list of {name, input, expect or errors}"))
        raw_cases = []
    cases = []
    for index, raw in enumerate(raw_cases):
        case, found = _case(path, document, index, raw, str(mapping), zones)
        problems.extend(found)
        if case is not None:
            cases.append(replace(case, xref={str(e): {str(k): str(v) for k, v in ids.items()}
                                             for e, ids in xref.items()}))
    if problems:
        raise ConfigError(problems)
    return cases


def _case(path: Path, document: Document, index: int, raw: Any, mapping: str, zones: dict[str, str]
          ) -> tuple[Case | None, list[str]]:
    where: JsonPath = ("cases", index)
    if not isinstance(raw, dict):
        return None, [_at(path, document, where, "a case is a mapping: {name, input, expect or errors}")]
    problems = [_at(path, document, (*where, key), f"unknown key {key!r} (keys: name, input, expect, errors)")
                for key in raw if key not in ("name", "input", "expect", "errors")]
    if not isinstance(raw.get("input"), dict):
        problems.append(_at(path, document, (*where, "input"), "input: the raw record, a mapping of fields"))
    if ("expect" in raw) == ("errors" in raw):
        problems.append(_at(path, document, where, "a case has either expect (the canonical record) or errors"))
    expect = raw.get("expect")
    if "expect" in raw and not isinstance(expect, dict):
        problems.append(_at(path, document, (*where, "expect"), "expect: the canonical record, a mapping"))
    errors: list[ExpectedError] = []
    for number, item in enumerate(raw.get("errors") or []):
        if isinstance(item, str):
            errors.append(ExpectedError(item))
        elif isinstance(item, dict) and isinstance(item.get("message"), str) and set(item) <= {"message", "path"}:
            errors.append(ExpectedError(item["message"], str(item["path"]) if "path" in item else None))
        else:
            problems.append(_at(path, document, (*where, "errors", number),
                                "an expected error is {path: $.field, message: TEXT} (or only the message)"))
    if ("errors" in raw and not isinstance(raw["errors"], list)) or raw.get("errors") == []:
        problems.append(_at(path, document, (*where, "errors"), "errors: a non-empty list of expected problems"))
    if problems:
        return None, problems
    position = document.positions.get(where)
    return Case(file=path, line=position.line if position else 1, mapping=mapping,
                name=str(raw.get("name") or f"case {index + 1}"), input=raw["input"],
                expect=expect if isinstance(expect, dict) else None, errors=tuple(errors),
                time_zones=dict(zones)), []


def _at(path: Path, document: Document | None, where: JsonPath, message: str) -> str:
    position = None
    if document is not None:
        for cut in range(len(where), -1, -1):
            position = document.positions.get(where[:cut])
            if position is not None:
                break
    line = f"{path}:{position.line}:{position.column}" if position else str(path)
    return f"{line}: {message} @ {format_path(where)}"


def run_cases(estate: Estate, cases: Iterable[Case]) -> list[CaseResult]:
    """Run every case; one result each, in order."""
    results = []
    compiled: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[FieldMap, RuleSet]] = {}
    for case in cases:
        if estate.mappings[case.mapping].direction == "outbound":
            results.append(_run_outbound(estate, case))
            continue
        zones = tuple(sorted(case.time_zones.items()))
        if (case.mapping, zones) not in compiled:
            field_map = FieldMap.for_estate(estate, case.mapping, time_zones=dict(zones).get)
            entity = field_map.entity_cls.entity
            rules = [rule for rule in estate.rules.get(entity, []) if rule.kind in STORE_FREE_RULES]
            compiled[(case.mapping, zones)] = field_map, RuleSet(entity, rules)
        field_map, rules = compiled[(case.mapping, zones)]
        (outcome,) = map_and_check([case.input], field_map, rules, None)
        result = CaseResult(case)
        if case.expect is not None:
            if outcome.record is None:
                result.failures = ["expected a record, got errors:", *(f"  {reason}" for reason in outcome.reasons)]
            else:
                result.failures = compare(case.expect, msgspec.json.encode(outcome.record))
        elif outcome.record is not None:
            result.failures = ["expected errors, got a record:",
                               *(f"  {path}: {_show(value)}" for path, value in _filled(
                                   msgspec.json.decode(msgspec.json.encode(outcome.record))).items())]
        else:
            result.failures = match_errors(case.errors, outcome.reasons)
        results.append(result)
    return results


def _run_outbound(estate: Estate, case: Case) -> CaseResult:
    """An outbound case: the canonical input mapped to the target's record, with the case's xref links."""
    from syncfabric.errors import RecordError
    from syncfabric.mapping.outbound import OutboundMap

    class Links:
        def xref(self, system: str, entity: str, external_id: str) -> str | None:
            return next((k for k, v in case.xref.get(entity, {}).items() if v == external_id), None)

        def xref_external(self, system: str, entity: str, key: str) -> str | None:
            return case.xref.get(entity, {}).get(key)

    field_map = OutboundMap.for_estate(estate, case.mapping, time_zones=case.time_zones.get, xref=Links())
    result = CaseResult(case)
    try:
        data = field_map.apply(case.input)
    except RecordError as exc:
        reasons = [str(problem) for problem in exc.problems]
        result.failures = (match_errors(case.errors, reasons) if case.expect is None else
                           ["expected a record, got errors:", *(f"  {reason}" for reason in reasons)])
        return result
    if case.expect is not None:
        result.failures = compare(case.expect, msgspec.json.encode(data))
    else:
        result.failures = ["expected errors, got a record:",
                           *(f"  {path}: {_show(value)}" for path, value in _filled(data).items())]
    return result


def compare(expected: dict[str, Any], payload: bytes) -> list[str]:
    """What differs between an expected canonical record and a produced one, by path; empty fields are absent."""
    want = _filled(expected)
    got = _filled(msgspec.json.decode(payload))
    lines = []
    for path in [*want, *(p for p in got if p not in want)]:
        if path not in got:
            lines.append(f"{path}: expected {_show(want[path])}, got nothing")
        elif path not in want:
            lines.append(f"{path}: not expected, got {_show(got[path])}")
        elif not _same(want[path], got[path]):
            lines.append(f"{path}: expected {_show(want[path])}, got {_show(got[path])}")
    return lines


def match_errors(expected: Sequence[ExpectedError], reasons: Sequence[str]) -> list[str]:
    """Every expected error matched by a distinct reported one, and no reported one left over."""
    left = list(reasons)
    lines = []
    for error in expected:
        found = next((reason for reason in left if _matches(error, reason)), None)
        if found is None:
            at = f" @ {error.path}" if error.path else ""
            lines.append(f"expected error not reported: {error.message}{at}")
        else:
            left.remove(found)
    lines += [f"unexpected error: {reason}" for reason in left]
    return lines


def _matches(error: ExpectedError, reason: str) -> bool:
    message, _, where = reason.partition(" @ ")
    path = where.split(" (", 1)[0]
    return error.message in message and (error.path is None or error.path == path)


def _filled(data: Any) -> dict[str, Any]:
    return {path: value for path, value in flatten(data) if value not in (None, "", [], {})}


def _same(want: Any, got: Any) -> bool:
    if want == got and type(want) is type(got):
        return True
    if isinstance(want, bool) or isinstance(got, bool):
        return False
    try:
        return Decimal(str(want)) == Decimal(str(got))
    except InvalidOperation:
        return str(want) == str(got)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else msgspec.json.encode(value).decode()
