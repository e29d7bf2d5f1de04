"""How the simulated event sources (plant MES, logistics SaaS, supplier portal) deliver what they emit.

A source produces :class:`Emitted` events; an :class:`Emitter` delivers them as a real sender would, with the fault
knobs of a real sender: latency, malformed records, duplicates and out-of-order delivery.

- :class:`WebhookEmitter` POSTs each event to ``<base_url>/<source>`` signed with HMAC-SHA256 over
  ``<timestamp>.<body>`` (the scheme of :mod:`syncfabric.connectors.webhook.signature`), and sends again on a 503
  or a refused connection, as logistics platforms do. ``syncfabric listen`` is the receiving end.
- :class:`MqttEmitter` publishes each event with QoS 1 to its catalog topic (``mfg/production/completed/P100``)
  when a broker is available (``pip install 'syncfabric[mqtt]'``).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from syncfabric.connectors.webhook.signature import sign


@dataclass(frozen=True)
class Emitted:
    """One event as its source sends it: the webhook path (``source``), the MQTT topic, the JSON body."""

    source: str
    topic: str
    body: dict[str, Any]


@dataclass
class EmitterFaults:
    """Fault knobs of a sender; each is a probability per event (0 = never), drawn from the emitter's seed."""

    malformed: float = 0.0
    """Send a record that breaks its schema (a quantity that is not a number); the hub quarantines it."""
    duplicate: float = 0.0
    """Send the event twice; the hub stores it once."""
    out_of_order: float = 0.0
    """Hold an event back and send it after the next one."""
    latency_ms: int = 0
    """Wait this long before each delivery."""
    malformed_sent: int = 0
    duplicates_sent: int = 0
    reordered: int = 0


@dataclass
class Delivery:
    """What an emitter sent so far, by answer."""

    answers: Counter[str] = field(default_factory=Counter)
    """``stored``, ``quarantined``, ``refused`` (4xx other than quarantine) and ``failed`` (gave up)."""
    sent: int = 0
    retries: int = 0


def break_record(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` with its first quantity (or first field) made unreadable, as a faulty sender sends it."""
    broken = dict(body)
    for name, value in body.items():
        if isinstance(value, dict) and "value" in value:
            broken[name] = {**value, "value": "12,5 pcs"}
            return broken
    first = next(iter(body))
    broken[first] = None
    return broken


class Emitter:
    """Applies the fault knobs, then hands each event to :meth:`_send`."""

    def __init__(self, *, seed: int = 0, faults: EmitterFaults | None = None) -> None:
        self.faults = faults or EmitterFaults()
        self.delivery = Delivery()
        self._random = random.Random(seed)
        self._held: Emitted | None = None

    def close(self) -> None:
        """Release what the emitter holds (a connection pool); nothing by default."""

    def emit(self, events: list[Emitted]) -> None:
        for event in events:
            for outgoing in self._with_faults(event):
                if self.faults.latency_ms:
                    time.sleep(self.faults.latency_ms / 1000)
                self.delivery.sent += 1
                self._send(outgoing)

    def flush(self) -> None:
        """Send an event still held back for out-of-order delivery."""
        if self._held is not None:
            held, self._held = self._held, None
            self.delivery.sent += 1
            self._send(held)

    def _with_faults(self, event: Emitted) -> list[Emitted]:
        chance, faults = self._random.random, self.faults
        if faults.malformed and chance() < faults.malformed:
            faults.malformed_sent += 1
            event = Emitted(event.source, event.topic, break_record(event.body))
        out = [event]
        if faults.duplicate and chance() < faults.duplicate:
            faults.duplicates_sent += 1
            out.append(event)
        if self._held is not None:
            out.append(self._held)
            self._held = None
        elif faults.out_of_order and chance() < faults.out_of_order:
            faults.reordered += 1
            self._held, out = out[0], out[1:]
        return out

    def _send(self, event: Emitted) -> None:
        raise NotImplementedError


class WebhookEmitter(Emitter):
    """Delivers events to a signed webhook endpoint, one POST each, retrying 503s and refused connections."""

    def __init__(self, base_url: str, secret: str, *, seed: int = 0, faults: EmitterFaults | None = None,
                 attempts: int = 20, timeout: float = 10.0) -> None:
        super().__init__(seed=seed, faults=faults)
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.attempts = attempts
        self._client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _send(self, event: Emitted) -> None:
        body = json.dumps(event.body, separators=(",", ":")).encode()
        for attempt in range(self.attempts):
            stamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Syncfabric-Timestamp": stamp,
                       "X-Syncfabric-Signature": sign(self.secret, stamp, body)}
            try:
                answer = self._client.post(f"{self.base_url}/{event.source}", content=body, headers=headers)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code != 503:
                self.delivery.answers[_answer(answer)] += 1
                return
            self.delivery.retries += 1
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
        self.delivery.answers["failed"] += 1


class MqttEmitter(Emitter):
    """Publishes events with QoS 1 to their catalog topics on an MQTT broker (needs ``aiomqtt``)."""

    def __init__(self, host: str, port: int, *, prefix: str = "", seed: int = 0,
                 faults: EmitterFaults | None = None) -> None:
        super().__init__(seed=seed, faults=faults)
        self.host, self.port, self.prefix = host, port, prefix
        self._pending: list[Emitted] = []

    def emit(self, events: list[Emitted]) -> None:
        super().emit(events)
        pending, self._pending = self._pending, []
        asyncio.run(self._publish(pending))

    def _send(self, event: Emitted) -> None:
        self._pending.append(event)

    async def _publish(self, events: list[Emitted]) -> None:
        import aiomqtt

        async with aiomqtt.Client(self.host, self.port) as client:
            for event in events:
                await client.publish(self.prefix + event.topic, json.dumps(event.body).encode(), qos=1)
                self.delivery.answers["published"] += 1


def _answer(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "stored"
    if response.status_code == 202:
        return "quarantined"
    return "refused"
