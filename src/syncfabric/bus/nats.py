"""The scale-out bus: the store's change log relayed to a NATS JetStream stream, read by durable pull consumers.

Needs the ``nats`` extra (``pip install 'syncfabric[nats]'``, nats-py); imported only when a ``nats://`` bus is used.

- One stream (default ``SYNCFABRIC``) on the subjects ``syncfabric.changes.<entity>.<partition>`` (another stream
  name ``S`` uses ``syncfabric.S.changes.>``). A message is one change, msgpack-encoded with its lineage, with the
  header ``Nats-Msg-Id: <entity>:<key>:<version>``: JetStream drops a second copy within ``duplicate_window``, so a
  relay that died between publishing and committing its checkpoint republishes nothing in effect.
- The relay publishes asynchronously in windows of distinct keys: two changes of one key are never in flight at once,
  so a failed publish retried later cannot land behind a newer change of its key.
- A consumer name has one durable pull consumer per partition (``<consumer>-<partition>``), explicit acks. A worker
  holding a partition's lease fetches from it; a worker taking over a partition whose previous holder left batches
  unacknowledged recreates that durable at its ack floor, so those batches come again first, in order, instead of
  after the messages behind them (which JetStream would hand out before the ack wait ran out).

nats-py is asyncio; the bus runs its own event loop in a background thread and offers the same blocking interface
as the embedded bus. NATS errors become :class:`~syncfabric.errors.BusError` here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import socket
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import msgspec

from syncfabric.bus.base import Batch, Bus, BusStatus, ConsumerStatus, Message, Subscription, message_id, partition_of
from syncfabric.bus.partitions import PartitionedSubscription, check_consumer_name, default_worker_id
from syncfabric.errors import BusError, ConfigError
from syncfabric.store import Change, Lineage, Op, Store

log = logging.getLogger(__name__)
T = TypeVar("T")
WINDOW = 512
"""Publishes in flight at once."""
MAX_ACK_PENDING = 10_000
"""Per partition durable; a fetch asks for at most this many."""
CLOCK_SKEW = dt.timedelta(seconds=60)
"""How far the NATS server's clock may lag the clocks of the processes recording changes."""
TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
HEADER_SAFE = " !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """A change as it travels: everything a consumer needs, lineage included."""

    seq: int
    entity: str
    key: str
    version: int
    op: str
    content_hash: str
    payload: bytes | None
    recorded_at: dt.datetime
    source_system: str
    source_id: str
    batch_id: str
    mapping_version: str


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Envelope).decode


def _nats() -> Any:
    try:
        import nats
        import nats.js.api
        import nats.js.errors
    except ImportError:
        raise ConfigError(["the NATS bus needs nats-py: pip install 'syncfabric[nats]'"]) from None
    return nats


class _Loop:
    """An asyncio loop in a daemon thread; blocking callers hand it coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="syncfabric-nats", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_rest(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class NatsBus(Bus):
    kind = "nats"

    def __init__(self, url: str, store: Store, *, partitions: int = 8, lease_seconds: float = 15.0,
                 stream: str = "SYNCFABRIC", ack_wait: float = 30.0, duplicate_window: float = 600.0,
                 publish_timeout: float = 30.0) -> None:
        self._nats = _nats()
        if not TOKEN.match(stream):
            raise ConfigError([f"bus URL: stream {stream!r}: use letters, digits, '_' or '-'"])
        self.server = url
        self.store = store
        self.partitions = partitions
        self.lease_seconds = lease_seconds
        self.stream = self.outbox = stream
        self.root = "syncfabric.changes" if stream == "SYNCFABRIC" else f"syncfabric.{stream}.changes"
        self.ack_wait = ack_wait
        self.duplicate_window = duplicate_window
        self.publish_timeout = publish_timeout
        _probe(url)
        self._loop = _Loop()
        try:
            # Once connected, reconnect for as long as it takes: a NATS restart pauses the bus, it does not end it.
            self._nc = self.call("connect to NATS", self._nats.connect(
                url, connect_timeout=5, max_reconnect_attempts=-1, reconnect_time_wait=0.5, name="syncfabric",
                error_cb=_log_error))
            self._js = self._nc.jetstream()
            self.call(f"set up the stream {stream}", self._ensure_stream())
        except BaseException:
            self._loop.close()
            raise

    def call(self, action: str, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Run ``coro`` on the bus's loop; NATS and timeout errors become BusError naming ``action``."""
        try:
            return self._loop.run(coro, timeout)
        except (self._nats.errors.Error, TimeoutError, OSError) as exc:
            raise BusError(f"{action}: {str(exc) or type(exc).__name__} [{self.server}]") from exc

    def __repr__(self) -> str:
        return f"NatsBus({self.server!r}, stream={self.stream!r}, partitions={self.partitions})"

    @property
    def url(self) -> str:
        return (f"{self.server}?partitions={self.partitions}&lease_seconds={self.lease_seconds}&stream={self.stream}"
                f"&ack_wait={self.ack_wait}&duplicate_window={self.duplicate_window}")

    @property
    def _description(self) -> str:
        return f"syncfabric change log; partitions={self.partitions}"

    async def _ensure_stream(self) -> None:
        api = self._nats.js.api
        try:
            info = await self._js.stream_info(self.stream)
        except self._nats.js.errors.NotFoundError:
            await self._js.add_stream(api.StreamConfig(
                name=self.stream, description=self._description, subjects=[f"{self.root}.>"],
                storage=api.StorageType.FILE, retention=api.RetentionPolicy.LIMITS,
                duplicate_window=self.duplicate_window,
            ))
            return
        found = info.config.description or ""
        if found != self._description:
            raise ConfigError([f"bus: the stream {self.stream} was made for {found!r}, not {self._description!r}: "
                               "every relay and worker must use the same partitions"])

    def subject(self, entity: str, partition: int) -> str:
        return f"{self.root}.{entity}.{partition}"

    # -- publishing (the relay) -------------------------------------------------------------------------------------

    def publish(self, changes: Sequence[Change]) -> int:
        for change in changes:
            if not TOKEN.match(change.entity):
                raise BusError(f"cannot publish change {change.seq}: entity {change.entity!r} is not a NATS subject "
                               "token (letters, digits, '_' or '-')")
        if not changes:
            return 0
        return self.call(f"publish {len(changes)} changes to {self.stream}", self._publish(changes), timeout=None)

    async def _publish(self, changes: Sequence[Change]) -> int:
        new = 0
        window: set[tuple[str, str]] = set()
        pending: list[asyncio.Future[Any]] = []
        for change in changes:
            ident = (change.entity, change.key)
            if ident in window or len(pending) >= WINDOW:
                new += await self._settle(pending)
                pending, window = [], set()
            window.add(ident)
            lineage = change.lineage
            body = _encode(Envelope(
                change.seq, change.entity, change.key, change.version, change.op.value, change.content_hash,
                change.payload, change.recorded_at, lineage.source_system, lineage.source_id, lineage.batch_id,
                lineage.mapping_version,
            ))
            msg_id = message_id(change.entity, quote(change.key, safe=HEADER_SAFE), change.version)
            subject = self.subject(change.entity, partition_of(change.entity, change.key, self.partitions))
            pending.append(await self._js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id}))
        return new + await self._settle(pending)

    async def _settle(self, pending: list[asyncio.Future[Any]]) -> int:
        acks = await asyncio.wait_for(asyncio.gather(*pending), self.publish_timeout)
        return sum(1 for ack in acks if not ack.duplicate)

    # -- consuming --------------------------------------------------------------------------------------------------

    def subscribe(self, consumer: str, *, entities: Sequence[str] | None = None, worker: str | None = None,
                  start: int | dt.datetime | None = None) -> Subscription:
        check_consumer_name(consumer)
        return NatsSubscription(self, consumer, worker or default_worker_id(), entities, start)

    def durable(self, consumer: str, partition: int) -> str:
        return f"{consumer}-{partition}"

    def start_sequence(self, start: int | dt.datetime) -> int:
        """The stream sequence a position or a time starts at (after the stream's end if nothing is that recent)."""
        if isinstance(start, int):
            return max(start, 1)
        first = next(self.replay(start), None)
        if first is not None:
            return first.position
        info = self.call("read the stream", self._js.stream_info(self.stream))
        return int(info.state.last_seq) + 1

    def replay(self, start: int | dt.datetime, *, entities: Sequence[str] | None = None) -> Iterator[Message]:
        api = self._nats.js.api
        if isinstance(start, dt.datetime):
            # JetStream's time is when a message was published, after it was recorded, but by the server's clock:
            # start a little earlier than asked, and skip what was recorded before ``start``.
            config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_TIME,
                                        opt_start_time=start - CLOCK_SKEW)
        else:
            config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                        opt_start_seq=max(start, 1))
        config.ack_policy = api.AckPolicy.NONE
        config.inactive_threshold = 60.0
        wanted = set(entities) if entities is not None else None
        subject = f"{self.root}.{entities[0]}.*" if entities is not None and len(entities) == 1 else f"{self.root}.>"
        if entities is not None and not entities:
            return
        sub = self.call("start a replay", self._js.pull_subscribe(subject, stream=self.stream, config=config))
        try:
            while True:
                msgs = self.call("replay", self._fetch(sub, 500, 1.0))
                for msg in msgs:
                    message = _message(msg)
                    if wanted is not None and message.entity not in wanted:
                        continue
                    if isinstance(start, dt.datetime) and message.recorded_at < start:
                        continue
                    yield message
                if not msgs or msgs[-1].metadata.num_pending == 0:
                    return
        finally:
            self.call("end a replay", sub.unsubscribe())

    async def _fetch(self, sub: Any, batch: int, timeout: float) -> list[Any]:
        try:
            return list(await sub.fetch(batch, timeout=timeout))
        except (TimeoutError, self._nats.errors.TimeoutError):  # nats-py raises either when nothing came
            return []

    def status(self) -> BusStatus:
        infos = self.call("read the consumers", self._js.consumers_info(self.stream))
        by_name: dict[str, list[Any]] = {}
        for info in infos:
            name, _, partition = info.name.rpartition("-")
            if info.config.durable_name and partition.isdigit():
                by_name.setdefault(name, []).append(info)
        consumers = [
            ConsumerStatus(
                name, self.partitions, sum(int(i.num_pending or 0) for i in group),
                sum(int(i.num_ack_pending or 0) for i in group),
                sorted(set(self.store.leases(f"bus:{name}:partition:").values())),
            )
            for name, group in sorted(by_name.items())
        ]
        relay = f"bus:relay:{self.outbox}"
        published = int(self.store.checkpoint(relay) or 0)
        return BusStatus(self.kind, self.store.head(), published, self.store.leases(relay).get(relay), consumers)

    def delete_consumer(self, consumer: str) -> None:
        async def delete() -> None:
            for partition in range(self.partitions):
                with contextlib.suppress(self._nats.js.errors.NotFoundError):
                    await self._js.delete_consumer(self.stream, self.durable(consumer, partition))

        self.call(f"delete consumer {consumer}", delete())

    def close(self) -> None:
        try:
            if not self._nc.is_closed:
                self.call("close the NATS connection", self._nc.close(), timeout=15)
        finally:
            self._loop.close()


def _probe(url: str) -> None:
    """Fail fast, with the address, when nothing listens there (nats-py would retry its first connect forever)."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 4222)
    try:
        socket.create_connection(address, timeout=5).close()
    except OSError as exc:
        raise BusError(f"cannot reach the NATS server at {address[0]}:{address[1]} ({url}): {exc}") from None


async def _log_error(exc: Exception) -> None:
    log.warning("NATS: %s", str(exc) or type(exc).__name__)


def _message(msg: Any) -> Message:
    env = _decode(msg.data)
    meta = msg.metadata
    change = Change(
        seq=env.seq, entity=env.entity, key=env.key, version=env.version, op=Op(env.op),
        content_hash=env.content_hash, payload=env.payload, recorded_at=env.recorded_at,
        lineage=Lineage(env.source_system, env.source_id, env.batch_id, env.mapping_version),
    )
    return Message(change, position=int(meta.sequence.stream), deliveries=int(meta.num_delivered))


class NatsSubscription(PartitionedSubscription):
    def __init__(self, bus: NatsBus, consumer: str, worker: str, entities: Sequence[str] | None,
                 start: int | dt.datetime | None) -> None:
        self.bus = bus
        self.entities = set(entities) if entities is not None else None
        self._start = start
        self._start_seq: int | None = None
        self._subs: dict[int, Any] = {}
        self._through: dict[int, int] = {}
        """Per held partition: a change-log sequence up to which all of its changes are acknowledged."""
        super().__init__(bus.store, consumer, worker, bus.partitions, bus.lease_seconds)

    def _filter(self, partition: int) -> str:
        one = next(iter(self.entities)) if self.entities is not None and len(self.entities) == 1 else "*"
        return self.bus.subject(one, partition)

    def _acquired(self, partition: int) -> None:
        bus = self.bus
        durable = bus.durable(self.consumer, partition)
        errors = bus._nats.js.errors
        api = bus._nats.js.api

        async def info() -> Any:
            try:
                return await bus._js.consumer_info(bus.stream, durable)
            except errors.NotFoundError:
                return None

        found = bus.call(f"read consumer {durable}", info())
        if found is not None and found.config.filter_subject != self._filter(partition):
            raise ConfigError([f"bus consumer {self.consumer!r} was made for {found.config.filter_subject!r}, not "
                               f"{self._filter(partition)!r}: subscribe with the entities it was made with, or "
                               "delete the consumer to start over"])
        start: int | None = None
        if found is None:
            if self._start is not None and self._start_seq is None:
                self._start_seq = bus.start_sequence(self._start)
            start = self._start_seq
        elif found.num_ack_pending:
            # A previous holder left batches unacknowledged: deliver them again first, in order.
            start = int(found.ack_floor.stream_seq) + 1
            bus.call(f"reset consumer {durable}", bus._js.delete_consumer(bus.stream, durable))
            found = None
        if found is None:
            config = api.ConsumerConfig(
                durable_name=durable, name=durable, filter_subject=self._filter(partition),
                ack_policy=api.AckPolicy.EXPLICIT, ack_wait=bus.ack_wait, max_ack_pending=MAX_ACK_PENDING,
                deliver_policy=api.DeliverPolicy.ALL if start is None else api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start, description=f"syncfabric consumer {self.consumer}, partition {partition}",
            )
            bus.call(f"create consumer {durable}", bus._js.add_consumer(bus.stream, config=config))
        self._subs[partition] = bus.call(
            f"bind consumer {durable}", bus._js.pull_subscribe_bind(durable=durable, stream=bus.stream)
        )

    def _released(self, partition: int) -> None:
        self._through.pop(partition, None)
        sub = self._subs.pop(partition, None)
        if sub is not None:
            with contextlib.suppress(BusError):  # the connection is gone: so is the subscription
                self.bus.call("leave a partition", sub.unsubscribe(), timeout=10)

    def _read(self, partition: int, max_messages: int, wait: float) -> Batch | None:
        bus = self.bus
        max_messages = min(max(max_messages, 1), MAX_ACK_PENDING)
        published = int(bus.store.checkpoint(f"bus:relay:{bus.outbox}") or 0)  # read before looking: see _drained
        msgs = bus.call("fetch changes", bus._fetch(self._subs[partition], max_messages, wait))
        if not msgs:
            self._drained(partition, published)
            return None
        messages = [_message(msg) for msg in msgs]
        last = max(m.seq for m in messages)

        def ack() -> None:
            bus.call("acknowledge changes", self._ack(msgs))
            self._through[partition] = max(self._through.get(partition, 0), last)

        if self.entities is not None:
            messages = [m for m in messages if m.entity in self.entities]
        if not messages:
            ack()
            return None
        return self._batch(partition, messages, ack)

    def _drained(self, partition: int, published: int) -> None:
        """After a fetch that found nothing: when the partition's durable has nothing pending nor unacknowledged,
        every change the relay had published before the fetch is acknowledged (one request, only when that is news)."""
        if published <= self._through.get(partition, 0):
            return
        bus = self.bus
        info = bus.call("read a consumer", bus._js.consumer_info(bus.stream, bus.durable(self.consumer, partition)))
        if not info.num_pending and not info.num_ack_pending:
            self._through[partition] = published

    def acknowledged_through(self) -> dict[int, int]:
        return {p: self._through[p] for p in self._assignment.held if p in self._through}

    async def _ack(self, msgs: list[Any]) -> None:
        # The last ack waits for the server's confirmation, and so for the ones before it: when ack() returns, the
        # consumer's state shows the batch done, and a worker taking the partition over does not redeliver it.
        for msg in msgs[:-1]:
            await msg.ack()
        await msgs[-1].ack_sync(timeout=self.bus.publish_timeout)
