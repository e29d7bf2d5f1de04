"""The exceptions syncfabric raises, grouped by what the runtime does with them.

    SyncfabricError
    ├── ConfigError            the estate file is wrong; nothing runs until it is fixed
    ├── StoreError             the canonical store refused an operation
    ├── BusError               the change-log bus (NATS JetStream) failed or refused an operation
    ├── RecordError            one record is bad; it goes to quarantine with its reasons
    └── ConnectorError         a connector failed talking to its system
        ├── TransientError     worth retrying (timeouts, 429, 5xx, lost connections)
        └── PermanentError     retrying will not help (4xx, bad credentials, rejected record)

Driver and protocol errors are translated into these once, at the connector or store boundary.
The retry engine branches on ``TransientError`` / ``PermanentError``, never on a bare ``Exception``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SyncfabricError(Exception):
    """Root of every error syncfabric raises on purpose."""


class ConfigError(SyncfabricError):
    """The estate file (or an override) is invalid. Carries every problem found, not only the first."""

    def __init__(self, problems: Sequence[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(self.problems))


class StoreError(SyncfabricError):
    """The canonical store could not do what was asked."""


class BusError(SyncfabricError):
    """The change-log bus could not do what was asked (server unreachable, stream refused, relay lease taken)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one record, located by a JSON path into the record (``$.lines[2].quantity``)."""

    message: str
    path: str = "$"

    def __str__(self) -> str:
        return f"{self.message} @ {self.path}"


class RecordError(SyncfabricError):
    """A record that cannot be accepted. ``problems`` lists every reason with where it is."""

    def __init__(self, problems: Sequence[Problem], *, system: str = "", key: str = "", location: str = "") -> None:
        self.problems = list(problems)
        self.system = system
        self.key = key
        self.location = location
        super().__init__(self.describe())

    def describe(self) -> str:
        context = ", ".join(
            part for part in (f"system {self.system}" if self.system else "", f"key {self.key}" if self.key else "",
                              self.location) if part
        )
        text = "; ".join(str(p) for p in self.problems)
        return f"{text} ({context})" if context else text


class ConnectorError(SyncfabricError):
    """A connector failed. Carries the system, entity and key it was working on, when known."""

    def __init__(self, message: str, *, system: str = "", entity: str = "", key: str = "") -> None:
        self.system = system
        self.entity = entity
        self.key = key
        where = ", ".join(p for p in (system, entity, key) if p)
        super().__init__(f"{message} [{where}]" if where else message)


class TransientError(ConnectorError):
    """Retrying later may succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: str) -> None:
        self.retry_after = retry_after
        super().__init__(message, **context)


class PermanentError(ConnectorError):
    """Retrying will not help; the record or request goes to quarantine or dead-letter."""
