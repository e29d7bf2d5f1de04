"""Completeness per domain, read from the reconciliation results in the run history (never recomputed).

``syncfabric reconcile DOMAIN`` records a run ``reconcile:<domain>`` whose detail holds each comparison (source with
store, store with each target): keys on the left, and how many of them the right holds equal. For the newest
finished reconciliation of a domain:

- each comparison's completeness is ``equal / keys`` (1.0 when the left has no keys);
- the domain's **completeness** is the lowest of them: the share of keys present and equal all the way to the
  weakest target. ``missing``, ``different`` and ``extra`` are summed over the comparisons.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from syncfabric.store import RunStatus, Store

PREFIX = "reconcile:"
SCAN = 500
"""Recent runs read to find each domain's newest reconciliation."""


@dataclass(frozen=True, slots=True)
class ComparisonStat:
    left: str
    right: str
    keys: int
    equal: int
    missing: int
    extra: int
    different: int

    @property
    def ratio(self) -> float:
        return self.equal / self.keys if self.keys else 1.0


@dataclass(frozen=True, slots=True)
class CompletenessStat:
    domain: str
    entity: str
    run_id: int
    at: dt.datetime
    """When the reconciliation finished."""
    completeness: float | None
    """0..1, None when nothing could be compared."""
    keys: int
    equal: int
    missing: int
    extra: int
    different: int
    comparisons: list[ComparisonStat] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        shown = asdict(self)
        shown["at"] = self.at.isoformat()
        return shown


def completeness(store: Store, *, domain: str | None = None) -> list[CompletenessStat]:
    """The newest finished reconciliation of each domain (or of ``domain``), by domain name."""
    runs = store.runs(f"{PREFIX}{domain}", limit=20) if domain else store.runs(limit=SCAN)
    newest: dict[str, CompletenessStat] = {}
    for run in runs:  # newest first
        if not run.flow.startswith(PREFIX) or run.status is RunStatus.RUNNING or run.finished_at is None:
            continue
        name = run.flow[len(PREFIX):]
        raw = run.detail.get("comparisons")
        if name in newest or not isinstance(raw, list):
            continue  # an older one, or a reconciliation that failed before it compared anything
        comparisons = [ComparisonStat(left=str(c["left"]), right=str(c["right"]), keys=int(c["keys"]),
                                      equal=int(c["equal"]), missing=int(c["missing"]), extra=int(c["extra"]),
                                      different=int(c["different"])) for c in raw if isinstance(c, dict)]
        weakest = min(comparisons, key=lambda c: c.ratio, default=None)
        newest[name] = CompletenessStat(
            domain=name, entity=str(run.detail.get("entity", name)), run_id=run.id, at=run.finished_at,
            completeness=weakest.ratio if weakest else None,
            keys=weakest.keys if weakest else 0, equal=weakest.equal if weakest else 0,
            missing=sum(c.missing for c in comparisons), extra=sum(c.extra for c in comparisons),
            different=sum(c.different for c in comparisons), comparisons=comparisons)
    return [newest[name] for name in sorted(newest)]
