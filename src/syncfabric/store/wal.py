"""Checkpoints of the embedded store's write-ahead log, in a thread of their own.

In WAL mode every commit appends the pages it changed to the log file; a checkpoint copies them back into the
database file and syncs it. By default SQLite checkpoints inside the commit that makes the log pass 1,000 pages:
under a steady event load that is one commit in a few dozen, and the event batch of that commit waits for the copy
and the extra fsync, a few milliseconds on the tail of the event path's latency.

So the store's connections leave checkpoints to a :class:`WalCheckpointer`: a thread with a connection of its own
that, after commits of this process, runs a ``PASSIVE`` checkpoint, which copies what no reader still needs without
taking the write lock or waiting for anyone (the I/O runs without the interpreter lock); at most one per
:data:`SPACING`, since each syncs the database file (one per commit cost 0.26 ms of CPU per commit where events
came one per commit; spaced, 0.06 ms). A commit that finds the log copied in full starts writing it from its
beginning again.

Under a load that never pauses, a commit always follows before the copy of the previous one ended, and the log
would only grow. So once it passes :data:`RESTART_PAGES` the thread copies what is left while it holds the store's
write queue (``writers``): about one commit's pages, a millisecond or so in which this process's next commit waits,
once per :data:`RESTART_PAGES` pages. That commit then finds the log copied in full and starts it over. The
connections keep an automatic checkpoint at a larger log still (:data:`FALLBACK_PAGES`), in case the thread falls
behind or another process writes the store. The thread starts with the store's first commit (its migration check)
and ends when the store is closed.

Measured by ``benchmarks/store_commits.py`` (1,500 commits of 100 shipment milestones, ``synchronous=full``), against
SQLite's own checkpoints: the p99 of a commit 8 to 10 ms → 3.5 to 4.5 ms, 2 ms apart or back to back, the log as
large (4 to 5 MB), the same total time.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

RESTART_PAGES = 1_000
"""Log pages (of 4 KiB: 4 MB, where SQLite checkpoints by itself) past which the next commit starts the log over."""
SPACING = 0.01
"""Seconds from the end of one checkpoint to the start of the next, at least: each costs a sync of the database
file, and under many small commits one per commit would double the syncs."""
FALLBACK_PAGES = 20_000
"""``wal_autocheckpoint`` of the store's connections: a checkpoint in the commit only past this many log pages."""

log = logging.getLogger(__name__)


class WalCheckpointer:
    """Checkpoints the log of the database at ``path`` after this process's commits, off the committing thread.
    ``writers``: the lock this process's commits hold; ``synchronous``: the store's setting, which decides whether a
    checkpoint syncs the database file."""

    def __init__(self, path: Path, writers: threading.Lock, synchronous: str = "FULL") -> None:
        self._path, self._writers, self._synchronous = path, writers, synchronous
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """Note a commit of this process; the first one starts the thread."""
        self._wake.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint {self._path.name}",
                                                    daemon=True)
                    self._thread.start()

    def close(self) -> None:
        """Stop the thread (the store's own close then checkpoints what is left)."""
        with self._lock:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA synchronous = {self._synchronous}")  # whether a checkpoint syncs: as the store
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop.is_set():
                    return
                try:
                    self._checkpoint(db)
                except sqlite3.Error as exc:  # the next round, or the fallback in a commit, tries again
                    log.warning("checkpoint of %s failed: %s", self._path, exc)
                self._stop.wait(SPACING)  # the commits meanwhile wait for the next round
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        # (busy, pages in the log, pages copied); a PASSIVE checkpoint never waits for a lock
        _, pages, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if pages >= RESTART_PAGES:
            with self._writers:  # no commit of this process meanwhile: the log ends up copied in full
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
