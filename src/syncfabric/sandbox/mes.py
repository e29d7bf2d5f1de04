"""Simulated plant MES: each plant reports production completions, inventory adjustments, machine downtime and
quality holds as they happen, as catalog events (:mod:`syncfabric.events.catalog`).

The data is seeded (one seed, the same day every run) and timed by the clock the caller passes, so a demo can
compress a day into seconds: ``tick(now)`` returns what the plants reported since the previous tick. Deliver the
events with an emitter of :mod:`.emitter` (signed webhooks, or MQTT when a broker is available).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from syncfabric.events.catalog import event_type
from syncfabric.sandbox.emitter import Emitted

PLANTS = ("1710", "1010", "DE-MUC", "P100")
"""The four plants of the global manufacturer by their canonical location ids: Palo Alto 1710 and Hamburg 1010 (ERP
North America, SAP, which keeps its plant codes), Munich (ERP Europe, plant 1000), Singapore P100 (ERP
Asia-Pacific)."""
SOURCES = {
    "production_completion": "production-completions",
    "inventory_movement": "inventory-adjustments",
    "machine_downtime": "machine-downtime",
    "quality_hold": "quality-holds",
}
"""The webhook path (``POST <prefix>/<source>``) of each event type the MES emits."""
_MIX = (("production_completion", 0.55), ("inventory_movement", 0.3), ("machine_downtime", 0.1),
        ("quality_hold", 0.05))
_REASONS = ("BREAKDOWN", "TOOL_CHANGE", "NO_MATERIAL", "MAINTENANCE")


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class PlantMes:
    """The MES of several plants, making the items given; ``events_per_tick`` events per plant and tick."""

    items: Sequence[str]
    plants: Sequence[str] = PLANTS
    seed: int = 7
    events_per_tick: int = 1
    emitted: Counter[str] = field(default_factory=Counter)
    """Events produced so far, by entity."""

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("the MES needs at least one item to produce")
        self._random = random.Random(self.seed)
        self._number = 0

    def tick(self, now: dt.datetime) -> list[Emitted]:
        """The events every plant reports at ``now`` (seeded: the same sequence of ticks gives the same events)."""
        events = []
        for plant in self.plants:
            for _ in range(self.events_per_tick):
                entity = self._random.choices([name for name, _ in _MIX], [weight for _, weight in _MIX])[0]
                events.append(self._event(entity, plant, now))
        return events

    def _event(self, entity: str, plant: str, now: dt.datetime) -> Emitted:
        self._number += 1
        number, pick, item = self._number, self._random, self._random.choice(self.items)
        when = stamp(now)
        if entity == "production_completion":
            body: dict[str, object] = {
                "completion_id": f"{plant}-CONF-{number:07d}", "production_order_id": f"{plant}-MO-{number % 40:04d}",
                "work_center_id": f"{plant}-WC{pick.randint(1, 6)}", "item_id": item, "location_id": plant,
                "good_quantity": {"value": pick.randint(5, 120), "unit": "EA"},
                "scrap_quantity": {"value": pick.randint(0, 3), "unit": "EA"}, "completed_at": when,
                "final": pick.random() < 0.2}
        elif entity == "inventory_movement":
            quantity = pick.choice((-1, 1)) * pick.randint(1, 40)
            body = {"movement_id": f"{plant}-MV-{number:07d}", "item_id": item, "location_id": plant,
                    "quantity": {"value": quantity, "unit": "EA"}, "movement_type": "adjustment",
                    "posted_at": when, "reference": "cycle count"}
        elif entity == "machine_downtime":
            body = {"event_id": f"{plant}-DT-{number:07d}", "occurred_at": when, "location_id": plant,
                    "work_center_id": f"{plant}-WC{pick.randint(1, 6)}", "started_at": when,
                    "expected_end": stamp(now + dt.timedelta(minutes=pick.randint(15, 240))),
                    "reason_code": pick.choice(_REASONS)}
        else:
            body = {"event_id": f"{plant}-QH-{number:07d}", "occurred_at": when, "location_id": plant,
                    "hold_id": f"{plant}-QN-{number:07d}", "item_id": item,
                    "quantity": {"value": pick.randint(10, 200), "unit": "EA"}, "status": "hold",
                    "reason_code": "INSPECTION", "reason": "incoming inspection failed"}
        self.emitted[entity] += 1
        return Emitted(SOURCES[entity], event_type(entity).mqtt_topic(plant), body)
