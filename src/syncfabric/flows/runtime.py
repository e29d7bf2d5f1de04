"""Runs an estate's flows: builds connectors and mappings from the estate file and records every run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import cached_property

import msgspec

from syncfabric.config import LoadedEstate
from syncfabric.connectors.base import Connector
from syncfabric.connectors.registry import connector_class
from syncfabric.errors import ConfigError
from syncfabric.flows.inbound import run_inbound
from syncfabric.flows.lease import Leases
from syncfabric.flows.outbound import run_outbound
from syncfabric.flows.result import FlowResult, Progress
from syncfabric.flows.retry import RetryPolicy
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet
from syncfabric.store import RunStatus, Store, open_store


class Runtime:
    """One estate, opened: its store, connectors and mappings. Use as a context manager."""

    def __init__(self, loaded: LoadedEstate, store: Store | None = None) -> None:
        self.loaded = loaded
        self.estate = loaded.estate
        self._store = store

    @cached_property
    def store(self) -> Store:
        return self._store or open_store(self.loaded.store_url)

    @cached_property
    def leases(self) -> Leases:
        """The leases this runtime takes: one run of a flow at a time across every process on the store."""
        return Leases(self.store)

    def connector(self, system: str, flow: str | None = None) -> Connector:
        """The system's connector; for an outbound ``flow`` with a ``mapping:``, one that writes through it, and with
        ``write_back:``, one that writes only its plants' planned orders, after the planner review."""
        spec = self.estate.systems[system]
        cls = connector_class(spec.kind)
        connector = cls(system, self.loaded.connection(system), self.loaded.secrets(system),
                        base_dir=self.loaded.base_dir)
        flow_spec = self.estate.flows.get(flow) if flow is not None else None
        if flow_spec is not None and flow_spec.direction == "outbound" and flow_spec.mapping is not None:
            from syncfabric.flows.outbound_mapping import MappedConnector
            from syncfabric.mapping.outbound import OutboundMap

            outbound = OutboundMap.for_estate(self.estate, flow_spec.mapping, time_zones=self._time_zones(),
                                              xref=self.store)
            connector = MappedConnector(connector, outbound)
        if flow_spec is not None and flow_spec.direction == "outbound" and flow_spec.write_back is not None:
            from syncfabric.flows.write_back import WriteBackConnector

            connector = WriteBackConnector(connector, flow_spec.write_back)
        return connector

    def field_map(self, name: str) -> FieldMap:
        return FieldMap.for_estate(self.estate, name, time_zones=self._time_zones())

    def _time_zones(self) -> Callable[[str], str | None]:
        zones: dict[str, str | None] = {}  # read once per location and run: locations change rarely

        def time_zone(location_id: str) -> str | None:
            if location_id not in zones:
                zones[location_id] = self.location_time_zone(location_id)
            return zones[location_id]

        return time_zone

    def location_time_zone(self, location_id: str) -> str | None:
        """The IANA time zone of a canonical location, as stored; a mapping converts its local times with it."""
        row = self.store.get("location", location_id)
        if row is None or row.deleted or row.payload is None:
            return None
        zone = msgspec.json.decode(row.payload).get("time_zone")
        return zone if isinstance(zone, str) else None

    def rules(self, entity: str) -> RuleSet:
        """The data-quality rules the estate declares for one entity."""
        return RuleSet.for_entity(self.estate.rules, entity)

    def run_flow(self, name: str, *, progress: Progress | None = None,
                 on_start: Callable[[int], None] | None = None) -> FlowResult:
        """Run one flow once and record it in the run history; re-raises what made it fail after recording it."""
        try:
            flow = self.estate.flows[name]
        except KeyError:
            raise ConfigError([f"unknown flow {name!r}; flows: {', '.join(self.estate.flows) or 'none'}"]) from None
        with self.leases.hold(f"flow:{name}"):
            _close_interrupted(self.store, name)
            return self._run_flow(name, flow, progress, on_start)

    def _run_flow(self, name: str, flow, progress: Progress | None,
                  on_start: Callable[[int], None] | None) -> FlowResult:
        run_id = self.store.start_run(name)
        if on_start is not None:
            on_start(run_id)
        try:
            with self.connector(flow.system, name) as connector:
                if hasattr(connector, "page_size"):  # a connector that pages its reads: the flow's page and commit
                    connector.page_size = flow.batch_size
                if flow.direction == "inbound":
                    assert flow.mapping is not None  # guaranteed by validation
                    field_map = self.field_map(flow.mapping)
                    result = run_inbound(
                        self.store, name, connector, field_map, mode=flow.mode,
                        source=flow.source or flow.entities[0], batch_id=f"run-{run_id}-{uuid.uuid4().hex[:8]}",
                        progress=progress, rules=self.rules(field_map.entity_cls.entity), watermark=flow.watermark,
                        keep_raw=flow.keep_raw, parallel=flow.parallel,
                    )
                else:
                    if flow.mode == "changes":
                        from syncfabric.flows.stream import refuse_while_streaming

                        refuse_while_streaming(self.store, name)
                    result = run_outbound(self.store, name, connector, entities=flow.entities, mode=flow.mode,
                                          batch_size=flow.batch_size, progress=progress,
                                          retry=RetryPolicy.from_spec(flow.delivery.retry))
        except BaseException as exc:
            self.store.finish_run(run_id, RunStatus.FAILED, detail={"error": str(exc) or type(exc).__name__})
            raise
        self.store.finish_run(
            run_id, RunStatus.SUCCEEDED, records_in=result.records_in, records_out=result.records_out,
            unchanged=result.unchanged, quarantined=result.quarantined, detail=result.detail(),
        )
        return result

    def close(self) -> None:
        if self._store is None and "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_interrupted(store: Store, flow: str) -> None:
    """Runs of ``flow`` still marked running while we hold its lease ended with their process: say so."""
    for run in store.runs(flow, limit=20):
        if run.status is RunStatus.RUNNING:
            store.finish_run(run.id, RunStatus.FAILED, detail={
                "error": "interrupted: the process ended before the run finished; the next run resumed from the "
                         "last committed checkpoint"})
