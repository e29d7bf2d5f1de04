"""What a flow run did, as the CLI and the run history report it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Progress = Callable[[int], None]
"""Called with the number of records just handled, so a caller can advance a progress bar."""


@dataclass
class FlowResult:
    flow: str
    direction: str
    records_in: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    records_out: int = 0
    quarantined: int = 0
    checkpoint: str | None = None
    per_entity: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def detail(self) -> dict[str, object]:
        return {
            "inserted": self.inserted, "updated": self.updated, "deleted": self.deleted,
            "per_entity": self.per_entity, "checkpoint": self.checkpoint,
        }
