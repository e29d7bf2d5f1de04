"""An outbound flow's ``mapping:``: each record's canonical payload shaped into the target's own record on its way
to ``connector.write``.

:class:`MappedConnector` wraps the flow's connector, so that every way an outbound flow writes (a batch run,
``syncfabric deliver``, dead-letter replay, resend) maps the same way. A record that fails to map is not written:
it comes back as rejected with every problem at its path, which the outbound flow turns into a dead letter holding
the *canonical* payload, so that a replay after a fix (a code map, a missing cross-reference link) maps it again.
Records of entities the mapping is not for pass unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from syncfabric.connectors.base import Connector, OutboundRecord, Page, Refusal, WriteOutcome
from syncfabric.errors import RecordError
from syncfabric.mapping.outbound import OutboundMap


class WrappedConnector(Connector):
    """``inner`` with something done to its writes: every other call goes to ``inner`` unchanged."""

    def __init__(self, inner: Connector) -> None:
        super().__init__(inner.system, inner.config, inner.secrets, base_dir=inner.base_dir)
        self.inner = inner
        self.kind = inner.kind  # type: ignore[misc]
        self.capabilities = inner.capabilities  # type: ignore[misc]
        self.links_external_ids = inner.links_external_ids  # type: ignore[misc]

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def test_connection(self) -> None:
        self.inner.test_connection()

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        return self.inner.read_full(entity, cursor)

    def read_changes(self, entity: str, since: str | None) -> Iterator[Page]:
        return self.inner.read_changes(entity, since)

    def read_snapshot(self, entity: str) -> Iterator[Page]:
        return self.inner.read_snapshot(entity)

    def call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        return self.inner.call(operation, request)

    def refusals(self, entity: str) -> Sequence[Refusal]:
        return self.inner.refusals(entity)

    def forget_refusals(self, entity: str, sources: Sequence[str]) -> None:
        self.inner.forget_refusals(entity, sources)

    def __getattr__(self, name: str) -> Any:  # what a connector kind offers besides the contract
        return getattr(self.inner, name)


class MappedConnector(WrappedConnector):
    """``inner`` with its writes of ``field_map.entity_cls.entity`` records mapped by ``field_map``."""

    def __init__(self, inner: Connector, field_map: OutboundMap) -> None:
        super().__init__(inner)
        self.field_map = field_map

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        if entity != self.field_map.entity_cls.entity:
            return self.inner.write(entity, records)
        mapped: list[OutboundRecord] = []
        unmapped: dict[str, str] = {}
        for record in records:
            if record.payload is None:
                mapped.append(OutboundRecord(record.key, record.version, None,
                                             target_key=self.field_map.key_fields(record.key)))
                continue
            try:
                payload = self.field_map.apply(record.payload, record.key)
            except RecordError as exc:
                unmapped[record.key] = (f"outbound mapping {self.field_map.version} failed: "
                                        + "; ".join(str(problem) for problem in exc.problems))
                continue
            mapped.append(OutboundRecord(record.key, record.version, payload, external_id=record.external_id))
        outcome = self.inner.write(entity, mapped) if mapped else WriteOutcome()
        outcome.rejected.update(unmapped)
        return outcome
