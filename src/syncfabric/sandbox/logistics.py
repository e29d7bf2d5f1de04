"""Simulated SaaS partners of the global manufacturer: a logistics platform posting shipment milestones, and a
supplier portal posting order confirmations and delays, both as signed webhooks (deliver with
:class:`~syncfabric.sandbox.emitter.WebhookEmitter`).

Seeded, and timed by the caller's clock like :mod:`.mes`: ``tick(now)`` returns what the partners posted since the
previous tick. Each shipment walks its milestones in order (booked → ... → delivered); each purchase order gets a
confirmation first, and some a delay later.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from syncfabric.events.catalog import NO_SITE, event_type
from syncfabric.sandbox.emitter import Emitted
from syncfabric.sandbox.mes import stamp

MILESTONES = ("booked", "picked_up", "departed", "in_transit", "arrived_port", "customs_cleared",
              "out_for_delivery", "delivered")
SOURCES = {"shipment_milestone": "shipment-milestones", "supplier_confirmation": "supplier-confirmations",
           "supplier_delay": "supplier-delays"}
_CARRIERS = ("OceanLine", "EuroFreight", "PacificAir")
_PORTS = ("DEHAM", "USOAK", "SGSIN", "CNSHA")


@dataclass
class LogisticsPartners:
    """Shipments to the plants given, and purchase orders of the suppliers given."""

    plants: Sequence[str]
    suppliers: Sequence[str]
    items: Sequence[str]
    seed: int = 7
    shipments: int = 12
    emitted: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._progress = dict.fromkeys(range(1, self.shipments + 1), 0)
        self._orders = 0

    def tick(self, now: dt.datetime) -> list[Emitted]:
        events = []
        moving = [number for number, reached in self._progress.items() if reached < len(MILESTONES)]
        for number in self._random.sample(moving, k=min(2, len(moving))):
            events.append(self._milestone(number, now))
        if self.suppliers:
            events.append(self._supplier(now))
        return events

    def _milestone(self, number: int, now: dt.datetime) -> Emitted:
        reached = self._progress[number]
        self._progress[number] = reached + 1
        plant = self.plants[number % len(self.plants)]
        milestone = MILESTONES[reached]
        body: dict[str, object] = {
            "shipment_id": f"SH-{self.seed:02d}{number:05d}", "milestone": milestone, "occurred_at": stamp(now),
            "carrier": _CARRIERS[number % len(_CARRIERS)], "place": _PORTS[(number + reached) % len(_PORTS)],
            "estimated_arrival": stamp(now + dt.timedelta(hours=6 * (len(MILESTONES) - reached)))}
        if milestone == "delivered":
            body["location_id"] = plant
        self.emitted["shipment_milestone"] += 1
        topic = event_type("shipment_milestone").mqtt_topic(plant if milestone == "delivered" else NO_SITE)
        return Emitted(SOURCES["shipment_milestone"], topic, body)

    def _supplier(self, now: dt.datetime) -> Emitted:
        pick = self._random
        supplier, item = pick.choice(self.suppliers), pick.choice(self.items)
        plant = pick.choice(self.plants)
        if self._orders and pick.random() < 0.3:
            order = pick.randint(1, self._orders)
            original = (now + dt.timedelta(days=7)).date()
            body: dict[str, object] = {
                "event_id": f"SD-{self.seed:02d}{order:05d}-{self.emitted['supplier_delay'] + 1}",
                "occurred_at": stamp(now), "location_id": plant, "supplier_id": supplier,
                "purchase_order_id": f"PO-{self.seed:02d}{order:05d}", "item_id": item,
                "original_date": original.isoformat(),
                "new_date": (original + dt.timedelta(days=pick.randint(1, 10))).isoformat(),
                "reason_code": "CAPACITY", "reason": "supplier capacity shortage"}
            self.emitted["supplier_delay"] += 1
            return Emitted(SOURCES["supplier_delay"], event_type("supplier_delay").mqtt_topic(plant), body)
        self._orders += 1
        body = {"purchase_order_id": f"PO-{self.seed:02d}{self._orders:05d}", "line_id": "10",
                "supplier_id": supplier, "status": "accepted",
                "confirmed_quantity": {"value": pick.randint(50, 500), "unit": "EA"},
                "confirmed_date": (now + dt.timedelta(days=pick.randint(5, 20))).date().isoformat(),
                "confirmed_at": stamp(now)}
        self.emitted["supplier_confirmation"] += 1
        return Emitted(SOURCES["supplier_confirmation"], f"mfg/supplier/confirmed/{plant}", body)
