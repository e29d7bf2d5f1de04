"""The newest change-log entries this process committed, kept in memory for its own consumers.

When one process both records changes and delivers them (``syncfabric listen`` with delivery, a demo), a consumer
woken by a commit would read back from the database what the writer held in hand a moment before. The writer keeps
what each commit appended instead, and :meth:`RecentChanges.read` answers from it.

It answers only what the database would: it holds a contiguous run of sequences, every committed entry with a
sequence in ``(after, last]`` (sequences are handed out under the store's write lock, so a commit of another process
in between leaves a gap in the numbers, and the run starts again after it). A read that starts before the run goes to
the database; a read that reaches the end of the run also asks the database for anything after it (another
process may have committed since), which costs one indexed query that usually finds nothing.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from syncfabric.store.base import Change, Lineage, Op

KEEP = 10_000
"""Entries kept at most (a few MB); older commits are dropped first (their readers go to the database, as a consumer
that far behind reads in large batches anyway)."""

Entry = tuple[int, str, int, str, bytes | None, Lineage]
"""seq, key, version, content hash, payload, lineage: what the writer logged."""
Entries = list[Entry] | Callable[[], list[Entry]]
"""The entries of one statement, or how to make them when first read (a bulk load logs a million, reads none)."""


@dataclass(slots=True)
class _Commit:
    """The entries of one entity written by one statement of a commit, built into :class:`Change` on first read."""

    first: int
    last: int
    entity: str
    op: Op
    recorded_at: dt.datetime
    entries: Entries
    built: list[Change] = field(default_factory=list)

    def changes(self) -> list[Change]:
        if not self.built:
            entity, op, at = self.entity, self.op, self.recorded_at
            entries = self.entries() if callable(self.entries) else self.entries
            self.built = [Change(seq, entity, key, version, op, digest, payload, at, lineage)
                          for seq, key, version, digest, payload, lineage in entries]
            self.entries = []
        return self.built


class RecentChanges:
    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._commits: list[_Commit] = []
        self._lasts: list[int] = []
        """The last sequence of each commit, for the binary search."""
        self._after = -1
        """Every committed entry with a sequence in (_after, last] is in ``_commits``; -1: nothing held."""
        self._size = 0

    @staticmethod
    def log(pending: list[_Commit], entity: str, op: Op, recorded_at: dt.datetime, first: int, last: int,
            entries: Entries) -> None:
        """Note in ``pending`` (one write transaction's list) what one statement appended: the entries of
        sequences ``first`` to ``last``, all of them."""
        pending.append(_Commit(first, last, entity, op, recorded_at, entries))

    def committed(self, pending: list[_Commit]) -> None:
        """A write transaction committed ``pending`` (its statements in order, their sequences ascending)."""
        if not pending:
            return
        with self._lock:
            for commit in pending:
                if not self._commits or commit.first != self._lasts[-1] + 1:  # a gap: another process wrote
                    self._commits, self._lasts, self._size = [], [], 0
                    self._after = commit.first - 1
                self._commits.append(commit)
                self._lasts.append(commit.last)
                self._size += commit.last - commit.first + 1
            while self._size > self.keep and len(self._commits) > 1:
                dropped = self._commits.pop(0)
                self._lasts.pop(0)
                self._size -= dropped.last - dropped.first + 1
                self._after = dropped.last

    def clear(self) -> None:
        with self._lock:
            self._commits, self._lasts, self._size, self._after = [], [], 0, -1

    def read(self, after: int, entities: Sequence[str] | None, limit: int,
             database: Callable[[int, int], list[Change]]) -> list[Change]:
        """What ``SELECT ... WHERE seq > after [AND entity IN entities] ORDER BY seq LIMIT limit`` answers, from
        memory when it holds the range; ``database(after, limit)`` runs that query for the rest."""
        with self._lock:
            if self._after < 0 or after < self._after:
                covered, held = None, []
            else:
                covered, held = self._lasts[-1], self._commits[bisect.bisect_right(self._lasts, after):]
            found: list[Change] = []
            wanted = None if entities is None else set(entities)
            for commit in held:
                if wanted is not None and commit.entity not in wanted:
                    continue
                changes = commit.changes()
                start = bisect.bisect_right(changes, after, key=_seq) if commit.first <= after else 0
                found.extend(changes[start:start + limit - len(found)])
                if len(found) >= limit:
                    return found
        if covered is None:
            return database(after, limit)
        return found + database(max(after, covered), limit - len(found))


def _seq(change: Change) -> int:
    return change.seq
