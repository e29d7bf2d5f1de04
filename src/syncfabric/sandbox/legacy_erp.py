"""A simulated legacy ERP that drops nightly CSV exports into a folder, as many regional ERPs still do.

Data is generated from a seed, so a run is repeatable. Exports are written to a temporary name and renamed into
place, so a reader never sees half a file. ``change_inventory`` and ``add_bad_rows`` let tests and the demo play
a day of business: a few balances move, a clerk types a quantity wrong.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

REGION = "APAC"
PLANTS = (("P100", "Singapore Plant", "Asia/Singapore"), ("P200", "Penang Plant", "Asia/Kuala_Lumpur"),
          ("P300", "Suzhou Plant", "Asia/Shanghai"), ("P400", "Pune Plant", "Asia/Kolkata"))
UNITS = ("EA", "EA", "EA", "KG", "M", "L")

COLUMNS = {
    "locations": ["SITE", "SITE_NAME", "SITE_TYPE", "PARENT_SITE", "TIME_ZONE"],
    "items": ["ITEM_NO", "DESCRIPTION", "UOM", "ITEM_TYPE", "UNIT_COST"],
    "item_locations": ["ITEM_NO", "SITE", "PROCUREMENT", "LEAD_TIME_DAYS", "SAFETY_STOCK", "PLANNER"],
    "inventory": ["ITEM_NO", "SITE", "LOT", "ON_HAND", "UOM", "ALLOCATED", "QI_STOCK", "SNAPSHOT_UTC"],
}


@dataclass
class LegacyErp:
    """The ERP's own tables, in memory, and its nightly export job."""

    folder: Path
    seed: int = 7
    item_count: int = 120
    rows: dict[str, dict[tuple[str, ...], dict[str, str]]] = field(default_factory=dict)
    bad_rows: dict[str, list[list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.random = random.Random(self.seed)
        self.clock = dt.datetime(2026, 11, 2, 18, 0, tzinfo=dt.UTC)
        self._generate()

    def _generate(self) -> None:
        rng = self.random
        locations = {(REGION,): _row("locations", REGION, "Asia-Pacific", "region", "", "Asia/Singapore")}
        for code, name, tz in PLANTS:
            locations[(code,)] = _row("locations", code, name, "plant", REGION, tz)
        items, item_locations, inventory = {}, {}, {}
        for number in range(1, self.item_count + 1):
            item = f"{'FG' if number % 5 == 0 else 'RM'}-{number:05d}"
            unit = "EA" if item.startswith("FG") else rng.choice(UNITS)
            kind = "finished" if item.startswith("FG") else "raw"
            cost = Decimal(rng.randint(50, 50_000)) / 100
            items[(item,)] = _row("items", item, f"{kind.title()} material {number}", unit, kind, str(cost))
            for plant, _, _ in rng.sample(PLANTS, k=rng.randint(1, 3)):
                make = "make" if kind == "finished" else "buy"
                item_locations[(item, plant)] = _row(
                    "item_locations", item, plant, make, str(rng.randint(1, 45)), str(rng.randint(0, 500)),
                    rng.choice(("ALEE", "BTAN", "CWONG")),
                )
                inventory[(item, plant, "")] = _row(
                    "inventory", item, plant, "", str(rng.randint(0, 5000)), unit, str(rng.randint(0, 100)),
                    str(rng.randint(0, 20)), _stamp(self.clock),
                )
        self.rows = {"locations": locations, "items": items, "item_locations": item_locations,
                     "inventory": inventory}

    def change_inventory(self, count: int) -> list[str]:
        """Move the on-hand quantity of ``count`` balances; returns their canonical keys."""
        self.clock += dt.timedelta(hours=1)
        keys = self.random.sample(sorted(self.rows["inventory"]), k=count)
        for key in keys:
            row = self.rows["inventory"][key]
            row["ON_HAND"] = str(int(row["ON_HAND"]) + self.random.randint(1, 250))
            row["SNAPSHOT_UTC"] = _stamp(self.clock)
        return ["|".join(key) for key in keys]

    def add_bad_rows(self, table: str, *rows: list[str]) -> None:
        """Rows the next export will contain as written: mistyped quantities, unknown units, missing keys."""
        self.bad_rows.setdefault(table, []).extend(rows)

    def export(self, tables: tuple[str, ...] = tuple(COLUMNS)) -> list[Path]:
        """Write one complete CSV per table, atomically, named by the export time."""
        self.folder.mkdir(parents=True, exist_ok=True)
        written = []
        stamp = self.clock.strftime("%Y%m%dT%H%M%S")
        for table in tables:
            path = self.folder / f"{table}_{stamp}.csv"
            partial = path.with_name(path.name + ".part")
            with partial.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(COLUMNS[table])
                for key in sorted(self.rows[table]):
                    writer.writerow(self.rows[table][key].values())
                writer.writerows(self.bad_rows.pop(table, []))
            os.replace(partial, path)
            written.append(path)
        return written


def _row(table: str, *values: str) -> dict[str, str]:
    return dict(zip(COLUMNS[table], values, strict=True))


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
