"""Subscribes to an MQTT broker with QoS 1 in a persistent session, and acknowledges a message only after it is
durably in the store.

Each subscribing flow connects with its own fixed client id (``<client_id>-<flow>``) and ``clean_session`` off,
so the broker keeps the subscription and queues what plants publish while syncfabric is down; on reconnect it
delivers that first. Acknowledgement is manual: the PUBACK for a message is sent by :class:`Received.ack`, which
the flow calls after the transaction holding the message committed. A message received but not acknowledged when
the process dies (or the connection drops) stays in the broker's session and is delivered again; events are keyed
by their own ids, so a second delivery changes nothing in the store.

The broker bounds how many unacknowledged messages it sends at once (mosquitto: ``max_inflight_messages``,
default 20): that is also the largest batch a flow can commit, so raise it for throughput (1000 is reasonable).

aiomqtt (``pip install 'syncfabric[mqtt]'``) runs on an asyncio loop in a thread of its own; the flow takes
messages from an :class:`~syncfabric.connectors.inbox.Inbox`. aiomqtt 2.x does not expose paho-mqtt's manual
acknowledgement, so the paho client underneath is switched to it before connecting.

**Shared subscriptions** (``listen --workers N``, :mod:`syncfabric.flows.listen_workers`): each of N processes
connects as a member, ``<client_id>-<flow>-w<i>``, with a persistent session of its own, and subscribes to
``$share/<client_id>-<flow>/<filter>`` (the shared subscriptions of MQTT v5, which mosquitto, EMQX and HiveMQ
also give MQTT 3.1.1 clients: ``protocol`` in the connection chooses); the broker hands each message to one member
of the group. A member's session keeps what it was handed while its process is down (mosquitto goes on handing it
a share of new messages too), so a member that goes away for good is retired: :meth:`MqttConnector.drain_shared`
connects as it, unsubscribes, and takes what its session still holds; :meth:`MqttConnector.end_session` then
removes the session.

Reading: paho-mqtt reads a few bytes per system call and one packet per wake-up of the loop;
:mod:`~syncfabric.connectors.mqtt.read_ahead` gives it 64 KiB reads and every packet they hold per wake-up, the
messages that came together go to the inbox in one hand-over, and the PUBACKs of a batch reach the loop in one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import msgspec

from syncfabric.connectors.base import Acknowledgement, Capability, Connector, Received, RejectedRaw
from syncfabric.connectors.inbox import Inbox, Subscription
from syncfabric.connectors.mqtt.configuration import MqttConfig
from syncfabric.connectors.mqtt.exceptions import describe_payload_error, translate_error
from syncfabric.connectors.mqtt.read_ahead import read_ahead
from syncfabric.errors import ConnectorError, PermanentError

QOS = 1
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
"""MQTT v5 session expiry interval meaning "keep the session until the client ends it"."""


class MqttConnector(Connector):
    kind = "mqtt"
    capabilities = Capability.SUBSCRIBE
    config_type = MqttConfig
    config: MqttConfig
    secret_names = ("username", "password")

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def topic_filter(self, entity: str) -> str:
        """A flow's ``source`` is an MQTT topic filter (``mfg/machine/down/+``); a bare entity name stands for
        its topic in the event catalog, at every site."""
        if "/" in entity or "+" in entity or "#" in entity:
            return entity
        from syncfabric.events.catalog import event_type

        try:
            return event_type(entity).mqtt_filter
        except KeyError as exc:
            raise PermanentError(f"{exc.args[0]}; give the flow a source (an MQTT topic filter)",
                                 system=self.system, entity=entity) from None

    def test_connection(self) -> None:
        session = _Session(self, "", client_id=f"{self.config.client_id}-probe", clean=True)
        session.start()
        session.stop()

    def subscribe(self, entity: str, *, durable: str, batch_size: int = 500, max_wait: float = 0.02,
                  poll: float = 0.5) -> Subscription:
        session = _Session(self, self.topic_filter(entity), client_id=self.client_id(durable))
        session.start()
        return Subscription(session.inbox, batch_size=batch_size, max_wait=max_wait, poll=poll,
                            on_close=session.stop)

    def client_id(self, durable: str) -> str:
        return f"{self.config.client_id}-{durable}"

    def share_group(self, flow: str) -> str:
        """The shared-subscription group of a flow's workers: ``<client_id>-<flow>`` without the characters a share
        name must not hold (``/``, ``+``, ``#``)."""
        name = f"{self.config.client_id}-{flow}"
        return name.replace("/", "_").replace("+", "_").replace("#", "_")

    def shared_filter(self, entity: str, group: str) -> str:
        return f"$share/{group}/{self.topic_filter(entity)}"

    def subscribe_shared(self, entity: str, *, group: str, durable: str, batch_size: int = 500,
                         max_wait: float = 0.02, poll: float = 0.5) -> Subscription:
        """Subscribe as one member of the shared subscription ``group`` (a persistent session, client id
        ``<client_id>-<durable>``): the broker hands each message of the filter to one member."""
        session = _Session(self, self.shared_filter(entity, group), client_id=self.client_id(durable))
        session.start()
        return Subscription(session.inbox, batch_size=batch_size, max_wait=max_wait, poll=poll,
                            on_close=session.stop)

    def drain_shared(self, entity: str, *, group: str | None, durable: str, batch_size: int = 500,
                     max_wait: float = 0.02, poll: float = 0.5) -> Subscription:
        """Connect as a session that is to go away, unsubscribe it, and take what it still holds. ``group`` None:
        the flow's own (unshared) session of ``subscribe``; else a member of that shared group."""
        topic = self.topic_filter(entity) if group is None else self.shared_filter(entity, group)
        session = _Session(self, topic, client_id=self.client_id(durable), unsubscribe=True)
        session.start()
        return Subscription(session.inbox, batch_size=batch_size, max_wait=max_wait, poll=poll,
                            on_close=session.stop)

    def end_session(self, durable: str) -> None:
        """Remove the broker's session of ``<client_id>-<durable>`` (a clean connect), with whatever it holds:
        only for a session drained and unsubscribed before."""
        session = _Session(self, "", client_id=self.client_id(durable), clean=True)
        session.start()
        session.stop()


class _Session:
    """One MQTT client on its own thread and event loop: connects, subscribes, and feeds the inbox; reconnects
    with capped backoff when the connection is lost (the broker re-sends what we had not acknowledged)."""

    def __init__(self, connector: MqttConnector, topic: str, *, client_id: str, clean: bool = False,
                 unsubscribe: bool = False) -> None:
        self.connector = connector
        self.config = connector.config
        self.topic = topic
        self.client_id = client_id
        self.clean = clean
        self.v5 = connector.config.protocol == "5"
        """MQTT v5, a session kept until ended (expiry "never"); else MQTT 3.1.1 with ``clean_session``."""
        self.unsubscribe = unsubscribe
        """Unsubscribe ``topic`` instead of subscribing: take only what the session still holds."""
        self.inbox = Inbox()
        self._ready = threading.Event()
        self._error: ConnectorError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._generation = 0
        """Counts connections: an acknowledgement for a message of an earlier connection is not sent (the
        broker delivers that message again on the new one)."""
        self._paho: Any = None
        self._acks: list[tuple[int, int, int]] = []
        self._acks_lock = threading.Lock()
        self._acks_due = False
        """A call of :meth:`_send_acks` is scheduled on the loop and will take every acknowledgement queued."""
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{client_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # never leave start() waiting
            if not self._ready.is_set():
                self._error = self._translated(exc)
                self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        delay = 0.5
        while True:
            try:
                await self._connected()
                if not self.topic:  # a connection test: connected once, done
                    return
                delay = 0.5
            except asyncio.CancelledError:
                return
            except Exception as exc:
                error = self._translated(exc)
                if not self._ready.is_set() or isinstance(error, PermanentError):
                    if self._ready.is_set():
                        self.inbox.fail(error)
                    else:
                        self._error = error
                        self._ready.set()
                    return
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                return
            delay = min(delay * 2, self.config.reconnect_max_seconds)

    def _translated(self, error: BaseException) -> ConnectorError:
        if isinstance(error, ConnectorError):
            return error
        return translate_error(error, system=self.connector.system, where=self.connector.where)

    async def _connected(self) -> None:
        try:
            import aiomqtt
        except ImportError as exc:
            raise PermanentError("the mqtt connector needs aiomqtt: pip install 'syncfabric[mqtt]'",
                                 system=self.connector.system) from exc
        secrets = self.connector.secrets
        options: dict[str, Any] = {"clean_session": self.clean}
        if self.v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)
            if not self.clean:
                properties.SessionExpiryInterval = SESSION_NEVER_EXPIRES
            options = {"protocol": aiomqtt.ProtocolVersion.V5, "clean_start": self.clean, "properties": properties}
        client = aiomqtt.Client(
            self.config.host, self.config.port, identifier=self.client_id,
            keepalive=self.config.keepalive_seconds, timeout=self.config.connect_timeout_seconds,
            username=secrets.get("username"), password=secrets.get("password"), **options,
        )
        # Before connecting: messages the broker kept for this session arrive right after CONNACK.
        client._client.manual_ack_set(True)
        read_ahead(client._client)
        async with client:
            self._generation += 1
            self._paho = client._client
            if self.topic and self.unsubscribe:
                await client.unsubscribe(self.topic)
            elif self.topic:
                await client.subscribe(self.topic, qos=QOS)
            self._ready.set()
            if not self.topic:
                return
            generation = self._generation
            arrived = client._queue  # what paho handed over in the same wake-up: one hand-over to the flow for all
            async for message in client.messages:
                received = [self._received(message, generation)]
                while not arrived.empty():
                    received.append(self._received(arrived.get_nowait(), generation))
                self.inbox.put_many(received)

    def _received(self, message: Any, generation: int) -> Received:
        topic = str(message.topic)
        location = f"mqtt://{self.connector.where}/{topic} (message {message.mid})"
        ack = _Ack(self, generation, message.mid, message.qos)
        body = message.payload
        try:
            data = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raw = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)
            problem = RejectedRaw(raw=raw, reason=describe_payload_error(exc), location=location)
            return Received([{}], location, ack, {0: problem})
        if not isinstance(data, dict):
            problem = RejectedRaw(raw=msgspec.json.encode(data).decode(), location=location,
                                  reason=f"message body must be a JSON object, got {type(data).__name__}")
            return Received([{}], location, ack, {0: problem})
        data.setdefault("_topic", topic)
        return Received([data], location, ack)

    def acknowledge(self, generation: int, mid: int, qos: int) -> None:
        """Send the PUBACK from the client's own loop (paho is not thread-safe); the acknowledgements of a batch
        go over in one call to the loop."""
        loop = self._loop
        if loop is None or loop.is_closed() or qos == 0:
            return
        with self._acks_lock:
            self._acks.append((generation, mid, qos))
            if self._acks_due:
                return
            self._acks_due = True
        with contextlib.suppress(RuntimeError):  # stopped: the broker delivers the message again next time
            loop.call_soon_threadsafe(self._send_acks)

    def _send_acks(self) -> None:
        with self._acks_lock:
            acks, self._acks, self._acks_due = self._acks, [], False
        paho = self._paho
        for generation, mid, qos in acks:
            if generation == self._generation and paho is not None:
                paho.ack(mid, qos)


class _Ack:
    __slots__ = ("generation", "mid", "qos", "session")

    def __init__(self, session: _Session, generation: int, mid: int, qos: int) -> None:
        self.session, self.generation, self.mid, self.qos = session, generation, mid, qos

    def __call__(self, first: int, outcomes: list[Acknowledgement]) -> None:  # a message is one record
        self.session.acknowledge(self.generation, self.mid, self.qos)
