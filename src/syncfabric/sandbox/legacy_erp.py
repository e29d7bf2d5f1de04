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
    "vendors": ["VENDOR_NO", "VENDOR_NAME", "BLOCKED"],
    "sources": ["ITEM_NO", "SITE", "VENDOR_NO", "LEAD_TIME_DAYS"],
    "boms": ["PARENT_ITEM", "SITE", "BASE_QTY", "BASE_UOM", "LINE_NO", "COMPONENT", "QTY_PER", "COMP_UOM"],
}
"""``boms``: the BOM explosion report, one row per component, the parent's columns repeated on each."""
VENDORS = (("V-88001", "Straits Precision Pte Ltd"), ("V-88002", "Penang Components Sdn Bhd"),
           ("V-88003", "Suzhou Metalworks Co"))
ORDER_COLUMNS = ["ORDER_REF", "ORDER_TYPE", "ITEM_NO", "SITE", "QTY", "UOM", "START_DATE", "DUE_DATE", "VENDOR_NO"]
"""The order import file (``inbound/orders_*.csv``): ``ORDER_TYPE`` PO (purchase, from ``VENDOR_NO``) or WO
(work order)."""
REJECT_COLUMNS = ["LINE", *ORDER_COLUMNS, "REASON"]
"""The import job's reject file (``inbound/rejected/<import file>``): each refused row as it came, its line in the
import file and the reason."""


@dataclass
class OrderImport:
    """What one run of the order import did."""

    booked: int = 0
    duplicates: int = 0
    """Rows whose reference was booked before: nothing booked again."""
    rejected: list[str] = field(default_factory=list)
    """``file:line: reason`` per row refused (also written to ``inbound/rejected/<file>``, ``REJECT_COLUMNS``)."""


@dataclass
class LegacyErp:
    """The ERP's own tables, in memory, and its nightly export job."""

    folder: Path
    seed: int = 7
    item_count: int = 120
    rows: dict[str, dict[tuple[str, ...], dict[str, str]]] = field(default_factory=dict)
    bad_rows: dict[str, list[list[str]]] = field(default_factory=dict)
    sourcing: bool = False
    """Also keep (and export) vendors and the vendor of each bought item per site (``vendors``, ``sources``)."""
    structures: bool = False
    """Also keep (and export) a production BOM per made item and site (``boms``): two or three of the raw
    materials bought at that site; the made item's stock there is then around its safety stock."""
    last_transactions: bool = False
    """Also export each balance's last stock transaction time (``LAST_TXN_UTC``, after ``SNAPSHOT_UTC``)."""

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
                if self.last_transactions:
                    inventory[(item, plant, "")]["LAST_TXN_UTC"] = _stamp(self.clock)
        vendors = {(number,): _row("vendors", number, name, "N") for number, name in VENDORS}
        sources = {(item, plant): _row("sources", item, plant, VENDORS[index % len(VENDORS)][0], row["LEAD_TIME_DAYS"])
                   for index, ((item, plant), row) in enumerate(sorted(item_locations.items()))
                   if row["PROCUREMENT"] == "buy"}
        self.rows = {"locations": locations, "items": items, "item_locations": item_locations,
                     "inventory": inventory}
        if self.sourcing:
            self.rows.update(vendors=vendors, sources=sources)
        if self.structures:
            self.rows["boms"] = self._boms(items, item_locations, inventory)
        self.orders: dict[str, dict[str, str]] = {}
        """Orders booked from import files, by their reference."""

    def _boms(self, items: dict, item_locations: dict, inventory: dict) -> dict[tuple[str, ...], dict[str, str]]:
        """A BOM per made item and site; a plant that makes an item ships it as it is made, so its stock is around
        its safety stock (below it about half the time). Its own random stream, so that the rest of the seeded
        data is the same with or without BOMs."""
        rng = random.Random(self.seed * 7919 + 1)
        bought: dict[str, list[str]] = {}
        for (item, site), row in sorted(item_locations.items()):
            if row["PROCUREMENT"] == "buy":
                bought.setdefault(site, []).append(item)
        boms: dict[tuple[str, ...], dict[str, str]] = {}
        for (item, site), row in sorted(item_locations.items()):
            components = bought.get(site, [])
            if row["PROCUREMENT"] != "make" or not components:
                continue
            for number, component in enumerate(rng.sample(components, k=min(len(components), rng.randint(2, 3))),
                                               start=1):
                line = f"{number * 10:04d}"
                boms[(item, site, line)] = _row("boms", item, site, "1", items[(item,)]["UOM"], line, component,
                                                str(rng.randint(1, 4)), items[(component,)]["UOM"])
            inventory[(item, site, "")]["ON_HAND"] = str(rng.randint(0, 2 * int(row["SAFETY_STOCK"])))
        return boms

    def change_inventory(self, count: int, at: dt.datetime | None = None) -> list[str]:
        """Move the on-hand quantity of ``count`` balances at ``at`` (by default an hour after the last change),
        stamped with it (``SNAPSHOT_UTC``; also ``LAST_TXN_UTC`` with ``last_transactions``, which an export that
        stamps every row with its own time leaves as it is); returns their canonical keys."""
        self.clock = self.clock + dt.timedelta(hours=1) if at is None else at
        keys = self.random.sample(sorted(self.rows["inventory"]), k=count)
        for key in keys:
            row = self.rows["inventory"][key]
            row["ON_HAND"] = str(int(row["ON_HAND"]) + self.random.randint(1, 250))
            row["SNAPSHOT_UTC"] = _stamp(self.clock)
            if self.last_transactions:
                row["LAST_TXN_UTC"] = row["SNAPSHOT_UTC"]
        return ["|".join(key) for key in keys]

    def add_bad_rows(self, table: str, *rows: list[str]) -> None:
        """Rows the next export will contain as written: mistyped quantities, unknown units, missing keys."""
        self.bad_rows.setdefault(table, []).extend(rows)

    def export(self, tables: tuple[str, ...] | None = None) -> list[Path]:
        """Write one complete CSV per table (every table it keeps, by default), atomically, named by the export
        time."""
        tables = tuple(self.rows) if tables is None else tables
        self.folder.mkdir(parents=True, exist_ok=True)
        written = []
        stamp = self.clock.strftime("%Y%m%dT%H%M%S")
        for table in tables:
            path = self.folder / f"{table}_{stamp}.csv"
            partial = path.with_name(path.name + ".part")
            with partial.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow([*COLUMNS[table], *(["LAST_TXN_UTC"] if table == "inventory"
                                                    and self.last_transactions else [])])
                for key in sorted(self.rows[table]):
                    writer.writerow(self.rows[table][key].values())
                writer.writerows(self.bad_rows.pop(table, []))
            os.replace(partial, path)
            written.append(path)
        return written


    def import_orders(self) -> OrderImport:
        """The ERP's order import job: book every row of the complete files in ``inbound/`` (oldest first) whose
        reference is new, as ``PO-000001`` / ``WO-000001``; move each file to ``inbound/processed``. A reference
        booked before books nothing (a file sent twice books once); a bad row is refused with its reason."""
        inbound, result = self.folder / "inbound", OrderImport()
        if not inbound.is_dir():
            return result
        for path in sorted(inbound.glob("orders_*.csv"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
            refused: list[dict[str, str]] = []
            with path.open(newline="", encoding="utf-8") as handle:
                for line, row in enumerate(csv.DictReader(handle), start=2):
                    reason = self._book(row)
                    if reason == "duplicate":
                        result.duplicates += 1
                    elif reason:
                        result.rejected.append(f"{path.name}:{line}: {reason}")
                        refused.append({**row, "LINE": str(line), "REASON": reason})
                    else:
                        result.booked += 1
            if refused:
                (inbound / "rejected").mkdir(exist_ok=True)
                with (inbound / "rejected" / path.name).open("w", newline="", encoding="utf-8") as out:
                    writer = csv.DictWriter(out, REJECT_COLUMNS, extrasaction="ignore")
                    writer.writeheader()
                    writer.writerows(refused)
            done = inbound / "processed"
            done.mkdir(exist_ok=True)
            os.replace(path, done / path.name)
        return result

    def block_vendor(self, number: str, blocked: bool = True) -> None:
        """A buyer blocks (or unblocks) a vendor: the import refuses purchase orders from a blocked one."""
        self.rows["vendors"][(number,)]["BLOCKED"] = "Y" if blocked else "N"

    def _book(self, row: dict[str, str]) -> str:
        """Book one import row; ``duplicate``, a reason it is refused, or empty when booked."""
        reference = (row.get("ORDER_REF") or "").strip()
        if not reference:
            return "ORDER_REF is empty"
        if reference in self.orders:
            return "duplicate"
        kind, item, site = row.get("ORDER_TYPE"), row.get("ITEM_NO", ""), row.get("SITE", "")
        if kind not in ("PO", "WO"):
            return f"ORDER_TYPE must be PO or WO, not {kind!r}"
        if (item, site) not in self.rows["item_locations"]:
            return f"item {item} is not planned at site {site}"
        try:
            if Decimal(row.get("QTY") or "0") <= 0:
                return f"QTY must be positive, not {row.get('QTY')!r}"
        except ArithmeticError:
            return f"QTY is not a number: {row.get('QTY')!r}"
        vendor = self.rows.get("vendors", {}).get((row.get("VENDOR_NO", ""),))
        if kind == "PO" and vendor is None:
            return f"vendor {row.get('VENDOR_NO')!r} does not exist"
        if kind == "PO" and vendor["BLOCKED"] == "Y":
            return f"vendor {row['VENDOR_NO']} is blocked for purchasing"
        count = sum(1 for order in self.orders.values() if order["ORDER_TYPE"] == kind)
        self.orders[reference] = {**row, "ORDER_NO": f"{kind}-{count + 1:06d}"}
        return ""


def _row(table: str, *values: str) -> dict[str, str]:
    return dict(zip(COLUMNS[table], values, strict=True))


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
