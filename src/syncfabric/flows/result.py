"""What a flow run did, as the CLI and the run history report it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MAX_WARNINGS = 100
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
    warned: int = 0
    """Violations of rules of severity ``warn`` on accepted records: they passed, flagged."""
    warnings: list[str] = field(default_factory=list)
    """The first :data:`MAX_WARNINGS` warnings, as the run history keeps them."""
    checkpoint: str | None = None
    per_entity: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    """Outbound: changes the target rejected, or parked behind a rejected change of their key."""
    last_batch: int = 0
    """Change-log entries the last delivered batch covered (outbound)."""

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def warn(self, warnings: list[str]) -> None:
        self.warned += len(warnings)
        self.warnings.extend(warnings[:max(MAX_WARNINGS - len(self.warnings), 0)])

    def detail(self) -> dict[str, object]:
        detail: dict[str, object] = {
            "inserted": self.inserted, "updated": self.updated, "deleted": self.deleted,
            "per_entity": self.per_entity, "checkpoint": self.checkpoint,
        }
        if self.dead_lettered:
            detail["dead_lettered"] = self.dead_lettered
        if self.warned:
            detail["warned"] = self.warned
            detail["warnings"] = self.warnings
        return detail
