"""Writes canonical records to a planning platform through frePPLe's bulk REST input, and reads them back.

A write turns each canonical record into the platform's shape (:mod:`.shapes`) and sends them in bulk requests of
``batch_size``: ``PUT`` to upsert (the platform merges the fields given into the stored record), ``DELETE`` to
delete. An order with lines becomes one platform record per line; the lines it no longer has are found by reading
the order's records first, and deleted. A canonical record is accepted when all of its requests are.

Every record carries ``_version`` (the canonical version) and ``_stream`` (the canonical entity): the
platform applies a version only if it is newer than the last one it applied for that key and stream, so re-sending
a batch after a crash or a retry changes nothing, and a late older version never overwrites a newer one.

If a request fails half-way through a write, the error is raised and the whole write can be sent again: batches
already applied answer ``duplicate``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import msgspec

from syncfabric.connectors.base import Capability, OutboundRecord, Page, RawRecord, WriteOutcome
from syncfabric.connectors.http import ClientConnector, http_client
from syncfabric.connectors.planning import shapes
from syncfabric.connectors.planning.composite import COMPOSITES
from syncfabric.connectors.planning.configuration import PlanningConfig
from syncfabric.connectors.planning.exceptions import translate_error
from syncfabric.errors import PermanentError
from syncfabric.store.base import content_hash

_Request = tuple[int, int, str, shapes.Method, dict[str, Any]]
"""(phase, index of the record in the write, frePPLe entity, method, body): one record may need several requests,
sent phase by phase (:mod:`.composite`)."""


class PlanningConnector(ClientConnector[httpx.Client]):
    kind = "planning"
    capabilities = Capability.READ_FULL | Capability.WRITE
    config_type = PlanningConfig
    config: PlanningConfig
    secret_names = ("token",)

    def make_client(self) -> httpx.Client:
        token = self.secrets.get("token")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return http_client(self.system, self.config.base_url, timeout=self.config.timeout_seconds,
                           verify=self.config.verify_tls, headers=headers)

    def test_connection(self) -> None:
        self._request("GET", "item", params={"limit": 1})

    # ---- reading back ------------------------------------------------------------------------------------------

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        """The platform's records of a canonical entity (only the fields it writes), or of a frePPLe entity (as
        stored). Paged by offset; ``cursor`` is the offset to resume at."""
        if entity in COMPOSITES:
            raise PermanentError(f"{entity} is written as several platform entities; read those instead",
                                 system=self.system, entity=entity)
        shape = shapes.SHAPES.get(entity)
        target = shape.target if shape else entity
        params: dict[str, Any] = {"limit": self.config.read_page_size, "offset": int(cursor or 0)}
        if shape:
            params.update(shape.fixed)
        while True:
            rows = self._request("GET", target, entity=entity, params=params).json()
            offset = params["offset"] + len(rows)
            records = []
            for row in rows:
                key = shape.canonical_key(row) if shape else None
                if shape and key is None:
                    continue
                data = shape.project(row) if shape else row
                records.append(RawRecord(data, location=f"{target}:{key if shape else _target_key(row)}"))
            done = len(rows) < params["limit"]
            yield Page(records, cursor=str(offset), complete=done)
            if done:
                return
            params["offset"] = offset

    # ---- reconciliation ----------------------------------------------------------------------------------------

    def held_hashes(self, entity: str) -> dict[str, str]:
        """Per canonical key, the content hash of what the platform holds for it (the fields this entity writes,
        all of an order's line records together); compare with :meth:`expected_hash` of the store's record."""
        shape = shapes.shape_for(entity)
        held: dict[str, list[dict[str, Any]]] = {}
        for page in self.read_full(entity):
            for raw in page.records:
                key = shape.canonical_key(raw.data)
                if key is not None:
                    held.setdefault(key, []).append(raw.data)
        return {key: _view_hash(shape, rows) for key, rows in held.items()}

    def expected_hash(self, entity: str, payload: dict[str, Any]) -> str:
        """The content hash of what the platform should hold for a canonical record."""
        shape = shapes.shape_for(entity)
        return _view_hash(shape, shape.payloads(payload))

    # ---- writing -----------------------------------------------------------------------------------------------

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        composite = COMPOSITES.get(entity)
        try:
            shape = None if composite else shapes.shape_for(entity)
        except KeyError as exc:
            raise PermanentError(f"{exc.args[0]}, {', '.join(COMPOSITES)}", system=self.system,
                                 entity=entity) from None
        ordered = shapes.parents_first(shape, records) if shape else list(records)
        unshaped: dict[int, str] = {}
        requests: list[_Request] = []
        held: dict[str, set[str]] = {}
        for index, record in enumerate(ordered):
            try:
                if composite is not None:
                    steps = composite.plan(record, self.config.source, held,
                                           lambda target, filters: self._rows(target, entity, filters))
                    requests.extend((phase, index, target, method, body) for phase, target, method, body in steps)
                else:  # one phase
                    assert shape is not None
                    requests.extend((0, index, shape.target, method, body)
                                    for method, body in self._plan(shape, entity, record, held))
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                what = shape.target if shape else entity
                unshaped[index] = f"cannot shape for {what}: {type(exc).__name__}: {exc}"
        if composite is not None:
            requests.sort(key=lambda request: request[0])  # stable: each phase keeps the records' order
        errors: dict[int, list[str]] = {}
        for batch in _batches(requests, self.config.batch_size):
            _, _, target, method, _ = batch[0]
            response = self._request(method, target, entity=entity, content=msgspec.json.encode(
                [request[4] for request in batch]), headers=_JSON)
            for request, result in zip(batch, _results(response, len(batch), self.system, entity), strict=True):
                if result.status != "ok":
                    reason = str(result.error or "rejected by the platform")
                    errors.setdefault(request[1], []).append(reason if shape else f"{target}: {reason}")
        outcome = WriteOutcome()
        if not unshaped and not errors:
            outcome.accepted = [record.key for record in ordered]
            return outcome
        for index, record in enumerate(ordered):
            reasons = [unshaped[index]] if index in unshaped else errors.get(index)
            if reasons:
                outcome.rejected[record.key] = "; ".join(reasons)
            else:
                outcome.accepted.append(record.key)
        return outcome

    def _plan(
        self, shape: shapes.Shape, entity: str, record: OutboundRecord, held: dict[str, set[str]]
    ) -> list[tuple[shapes.Method, dict]]:
        """The requests that bring the platform to this record's state, each body marked with its version.

        ``held`` remembers, per order key, the line records the platform will hold once the requests planned so far
        are applied, so that a second version of an order in the same write deletes what the first one added."""
        marks = {"_version": record.version, "_stream": entity}
        lines = shape.lines_filter(record.key)
        if record.payload is None and lines is None:
            method, body = shape.deletion(record.key)
            if method == "PUT":
                body["source"] = self.config.source
            return [(method, {**body, **marks})]
        wanted = shape.payloads(record.payload) if record.payload is not None else []
        plan: list[tuple[shapes.Method, dict]] = []
        for body in wanted:
            if not shape.owns(record.key, body):
                raise ValueError(f"payload does not match key {record.key!r}")
            body["source"] = self.config.source  # ``payloads`` made each body for this write alone
            body.update(marks)
            plan.append(("PUT", body))
        if lines is not None:
            name = shape.key_fields[0]
            keep = {body[name] for body in wanted}
            now = held[record.key] if record.key in held else self._held(shape, entity, record.key, lines)
            plan += [("DELETE", {name: gone, **marks}) for gone in sorted(now - keep)]
            held[record.key] = keep
        return plan

    def _held(self, shape: shapes.Shape, entity: str, key: str, lines: dict[str, str]) -> set[str]:
        """Names of the platform's records an order has now (all pages)."""
        name = shape.key_fields[0]
        return {row[name] for row in self._rows(shape.target, entity, lines) if shape.canonical_key(row) == key}

    def _rows(self, target: str, entity: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        """Every platform record of a frePPLe entity matching ``filters`` (all pages)."""
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            params = {**filters, "limit": self.config.batch_size, "offset": offset}
            rows = self._request("GET", target, entity=entity, params=params).json()
            found.extend(rows)
            if len(rows) < self.config.batch_size:
                return found
            offset += len(rows)

    def _request(self, method: str, target: str, *, entity: str = "", **kwargs: Any) -> httpx.Response:
        app = shapes.TARGET_APPS.get(target, "input")
        try:
            response = self.client.request(method, f"/api/{app}/{target}/", **kwargs)
        except httpx.HTTPError as exc:
            raise translate_error(exc, system=self.system, entity=entity) from exc
        if response.status_code not in (200, 207):
            raise translate_error(response, system=self.system, entity=entity)
        return response


_JSON = {"Content-Type": "application/json"}


def _batches(requests: list[_Request], size: int) -> Iterator[list[_Request]]:
    """Consecutive requests of one entity and method, at most ``size`` at a time, in the given order."""
    batch: list[_Request] = []
    for request in requests:
        if batch and (len(batch) == size or batch[-1][2] != request[2] or batch[-1][3] != request[3]):
            yield batch
            batch = []
        batch.append(request)
    if batch:
        yield batch


class _Result(msgspec.Struct):
    """The platform's outcome of one record of a bulk request."""

    status: Any = None
    error: Any = None


class _Answer(msgspec.Struct):
    results: list[_Result]


_answer = msgspec.json.Decoder(_Answer)


def _results(response: httpx.Response, expected: int, system: str, entity: str) -> list[_Result]:
    try:
        results = _answer.decode(response.content).results
    except msgspec.DecodeError:  # not JSON, no ``results``, or not a list of objects
        raise PermanentError("planning platform answered without per-record results", system=system,
                             entity=entity) from None
    if len(results) != expected:
        raise PermanentError(f"planning platform answered {len(results)} outcomes for {expected} records",
                             system=system, entity=entity)
    return results


def _target_key(row: dict[str, Any]) -> str:
    return str(row.get("name") or row.get("reference") or "/".join(
        str(row.get(name) or "") for name in ("item", "location", "supplier", "origin", "batch") if name in row
    ))


def _view_hash(shape: shapes.Shape, rows: Sequence[dict[str, Any]]) -> str:
    """A content hash of records in the platform's shape that does not depend on field order, record order, on
    fields left empty, or on whether a number came back as an integer or a float."""
    names = (*shape.key_fields, *shape.fixed, *shape.fields)
    views = sorted(json.dumps({name: _plain(row[name]) for name in names if row.get(name) not in (None, "")},
                              sort_keys=True) for row in rows)
    return content_hash("\n".join(views).encode())


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
