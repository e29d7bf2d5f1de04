"""Leases on singleton work (a run of one flow), held in the store so that processes sharing it never overlap.

Every run of a flow, started by ``syncfabric sync``, the scheduler or a test, holds the lease ``flow:<name>`` while
it runs and renews it in the background; a process that dies stops renewing and its lease expires. A holder is
named by host and process id, so a process on the same machine that finds the lease of a process that no longer
exists (killed with ``kill -9``) takes it over at once. Holding a lease
already held by the same holder is a no-op, so the scheduler can take it first (to decide whether a fire is still
to run) and the run inside it does not let go of it early.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncfabric.errors import SyncfabricError
from syncfabric.store import Store

DEFAULT_SECONDS = 300.0


class LeaseBusy(SyncfabricError):
    """Another holder has the lease: the work is being done elsewhere."""


class Leases:
    """The leases one process (one holder) takes in one store."""

    def __init__(self, store: Store, holder: str | None = None, seconds: float = DEFAULT_SECONDS) -> None:
        self.store = store
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.seconds = seconds
        self._held: set[str] = set()

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold lease ``name`` for the block, renewing it every third of its duration; LeaseBusy if it is taken."""
        if name in self._held:
            yield
            return
        if not self.store.acquire_lease(name, self.holder, self.seconds) and not self._take_over(name):
            raise LeaseBusy(f"{name.removeprefix('flow:')} is running elsewhere (another process holds its lease; "
                            f"it expires at most {self.seconds:.0f} s after that process stops)")
        self._held.add(name)
        stop = threading.Event()
        renewing = threading.Thread(target=self._renew, args=(name, stop), daemon=True)
        renewing.start()
        try:
            yield
        finally:
            stop.set()
            renewing.join()
            self._held.discard(name)
            self.store.release_lease(name, self.holder)

    def _take_over(self, name: str) -> bool:
        """Take the lease of a holder that was a process on this machine and is gone (killed, crashed): its run
        is over, and the next may start at once rather than when the lease runs out."""
        current = self.store.lease_holder(name)
        if current is None:
            return self.store.acquire_lease(name, self.holder, self.seconds)
        host, _, rest = current.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit() or pid_alive(int(pid)):
            return False
        return self.store.acquire_lease(name, self.holder, self.seconds, replacing=current)

    def _renew(self, name: str, stop: threading.Event) -> None:
        while not stop.wait(self.seconds / 3):
            self.store.acquire_lease(name, self.holder, self.seconds)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, dead and not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
