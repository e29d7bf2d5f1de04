"""A full refresh read and mapped in a second process while the first writes the store (``parallel`` flows).

The worker process reads the connector's pages, maps and validates every row (the same ``_map_page`` as in one
process), hashes the inputs and the records, and sends each page's records through a pipe as one MessagePack
document, the columns of a :class:`~syncfabric.store.RecordBatch` (canonical JSON, hashes, raw records, all as the
store writes them); the flow's process decodes it in one call and writes and commits page by page, in order, with
the checkpoint of each page, exactly as without a worker. So resuming after a crash is unchanged: the worker only
ever reads. A thread of the flow's process takes the pages off the pipe as they come, up to :data:`AHEAD` pages
ahead of the writes, so that neither process waits for the other to hand a page over; the worker ends itself when
the flow's process is gone (killed).

It takes part only where its result cannot differ from mapping in the flow's process: a mapping that only renames
columns (nothing else is consulted), no data-quality rules (they read the store), and a connector that can be
handed to another process (pickled); otherwise :func:`worker_pages` returns ``None`` and the flow maps in-process.
Input hashes to skip unchanged rows are those of the store when the run starts, for the run's first snapshot;
later snapshots of the same run (a second file) are mapped in full.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import msgspec

from syncfabric.config.schema import Mapping
from syncfabric.connectors.base import Connector, Page
from syncfabric.errors import PermanentError
from syncfabric.flows.heap import collect_per_page
from syncfabric.flows.rename_plan import renames_only
from syncfabric.flows.unchanged import KnownInputs, known_inputs
from syncfabric.mapping import FieldMap
from syncfabric.mapping.rules import RuleSet
from syncfabric.store import NewQuarantine, RecordBatch, Store, open_store

WATCH = 0.5
"""How often the worker checks that the flow's process still runs, in seconds."""
AHEAD = 2
"""Pages read off the worker's pipe and not yet written (a few MB each at 5,000 records)."""

Mapped = tuple[RecordBatch, list[NewQuarantine], list[str], dict[str, Any], list[str], list[str] | None]
"""What ``_map_page`` makes of a page, and for the page that completes a snapshot, the keys live when it started
that it did not contain (``None``: not known, the flow's process finds them)."""
_decode_batch = msgspec.msgpack.Decoder(RecordBatch).decode


def worker_pages(
    store: Store, flow_name: str, connector: Connector, field_map: FieldMap, *, source: str, cursor: str | None,
    batch_id: str, rules: RuleSet | None, keep_raw: bool = True,
) -> Iterator[tuple[Page, Mapped]] | None:
    """The pages of a full read of ``source`` from ``cursor``, each with what ``_map_page`` makes of it, read and
    mapped in a worker process; ``None`` if this flow cannot be mapped there. A page comes without its raw records
    (only its cursor, completeness and size)."""
    mapping = getattr(field_map, "mapping", None)
    if rules or mapping is None or not renames_only(field_map):
        return None
    try:
        handed = pickle.dumps(connector)
    except Exception:  # a connector holding a client, a socket or a lock: it reads in this process
        return None
    return _pages(store, handed, flow_name, field_map, mapping, source, cursor, batch_id, keep_raw)


def _pages(
    store: Store, connector: bytes, flow_name: str, field_map: FieldMap, mapping: Mapping, source: str,
    cursor: str | None, batch_id: str, keep_raw: bool,
) -> Iterator[tuple[Page, Mapped]]:
    # A process of its own (not multiprocessing's fork, which would share the store's connections and threads, nor
    # its spawn, which imports the caller's main script again): pages come back pickled through its stdout, read by
    # a thread of this process (:func:`_messages`). It starts first, so that it imports while this process reads
    # the input hashes.
    worker = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert worker.stdin is not None and worker.stdout is not None
    stop = threading.Event()
    reader: list[threading.Thread] = []
    try:
        inputs = known_inputs(store, flow_name, field_map, None, read=False)
        # The worker reads the input hashes from the store itself (a million of them take a second to read and as
        # long again to hand over), unless the store lives in this process only, or holds no live key of the
        # entity yet (a first load: the worker then opens no store at all).
        url = getattr(store, "url", "")
        entity = field_map.entity_cls.entity
        known = None
        if inputs is not None:
            here = not _shared(url) or store.count(entity) == 0
            if here:
                inputs.read(store, entity)
            known = (inputs.salt, inputs.keys, inputs.live, None if here else url)
        try:
            pickle.dump((os.getpid(), connector, flow_name, field_map.name, mapping, source, cursor, batch_id, known,
                         keep_raw), worker.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            worker.stdin.close()
        except BrokenPipeError:
            pass  # the worker ended at once: its exit code says why, below
        for message in _messages(worker.stdout, stop, reader):
            if message[0] == "error":
                raise message[1]
            if message[0] == "end":
                return
            _, page_cursor, complete, size, batch, rejected, skipped, missing = message
            yield Page(_Sized(size), page_cursor, complete), (_decode_batch(batch), rejected, [], {}, skipped, missing)
        raise PermanentError(f"the mapping worker of flow {flow_name!r} ended without a result (exit code "
                             f"{worker.wait()})")
    finally:
        stop.set()
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        for thread in reader:  # it sees the end of the pipe, or the stop, at once
            thread.join()
        worker.stdout.close()


def _messages(stream: IO[bytes], stop: threading.Event, started: list[threading.Thread]) -> Iterator[Any]:
    """The worker's messages until the end of its pipe, read off it by a thread (added to ``started``) at most
    :data:`AHEAD` messages ahead of the caller: the worker hands a page over while this process writes the last one,
    instead of waiting for it. ``stop`` ends the thread."""
    ahead: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=AHEAD)

    def read() -> None:
        while not stop.is_set():
            try:
                item: tuple[bool, Any] = (True, pickle.load(stream))
            except EOFError:
                item = (False, None)
            except BaseException as exc:  # handed to the caller, which raises it
                item = (False, exc)
            while not stop.is_set():
                try:
                    ahead.put(item, timeout=WATCH)
                    break
                except queue.Full:
                    continue
            if not item[0]:
                return

    thread = threading.Thread(target=read, name="syncfabric-map-worker-pipe", daemon=True)
    started.append(thread)
    thread.start()
    while True:
        ok, value = ahead.get()
        if not ok:
            if value is not None:
                raise value
            return
        yield value


def _shared(url: str) -> bool:
    """Whether another process opening the store URL ``url`` reaches the same store (not an in-memory SQLite)."""
    if not url:
        return False
    from sqlalchemy.engine import make_url  # here: the worker itself never needs SQLAlchemy on a first load

    parsed = make_url(url)
    return not parsed.drivername.startswith("sqlite") or parsed.database not in (None, "", ":memory:")


class _Sized(list):  # type: ignore[type-arg]
    """A page's records as the flow's process sees them from a worker: none, only how many there were."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __len__(self) -> int:
        return self.size


def _work() -> None:
    """The worker process: read the job from stdin, send each mapped page to stdout."""
    from syncfabric.flows.inbound import _map_page

    encode = msgspec.msgpack.Encoder().encode
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the pipe the pages travel through
    parent, connector, flow_name, map_name, mapping, source, cursor, batch_id, known, keep_raw = pickle.load(
        sys.stdin.buffer)
    _watch(parent)

    def send(message: tuple[Any, ...]) -> None:
        try:
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
        except BrokenPipeError:  # the flow's process is gone
            os._exit(1)

    try:
        reader: Connector = pickle.loads(connector)
        field_map = FieldMap(map_name, mapping)
        inputs = None
        if known is not None:
            salt, keys, live, url = known
            inputs = KnownInputs(salt, keys, live)
            if url is not None:
                with open_store(url, migrate=False) as shared:
                    inputs.read(shared, field_map.entity_cls.entity)
        seen: set[str] = inputs.seen if inputs is not None else set()  # read by the connector when it skips rows
        pages = reader.read_full(source, cursor) if inputs is None else reader.read_full_known(source, cursor, inputs)
        with collect_per_page() as collect:
            for page in pages:
                batch, rejected, _warnings, _links, skipped = _map_page(
                    page, field_map, flow_name, batch_id, None, None, inputs, seen, keep_raw=keep_raw)
                seen.update(skipped)
                seen.update(batch.keys)
                seen.update(entry.record_key for entry in rejected if entry.record_key)
                missing = ([key for key in inputs.live if key not in seen]
                           if page.complete and inputs is not None and inputs.live is not None else None)
                send(("page", page.cursor, page.complete, len(page.records) + len(page.problems)
                      + len(page.unchanged), encode(batch), rejected, skipped, missing))
                if page.complete:  # the next snapshot starts from what this one wrote: map it in full
                    seen.clear()
                    if inputs is not None:
                        inputs.keys, inputs.live = {}, None
                del page, batch, rejected, skipped  # freed now, so that the collection does not walk them
                collect()
        send(("end",))
    except BaseException as exc:  # handed to the flow's process, which raises it
        try:
            pickle.dumps(exc)
        except Exception:
            exc = PermanentError(f"mapping worker: {type(exc).__name__}: {exc}")
        send(("error", exc))


def _watch(parent: int) -> None:
    """End this process once the flow's process is gone (killed): nothing it could still send is wanted."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    _work()
