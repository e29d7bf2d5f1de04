"""The emulated S/4HANA system's data: seeded from a fixed seed, so every run starts from the same company.

Two plants (1010 Hamburg, 1710 Palo Alto) with one storage location each, products with descriptions, plant and
MRP data, stock per plant, suppliers (business partners with the supplier role), purchase orders with items and
schedule lines, and production orders. Every change stamps ``LastChangeDateTime`` from the system's clock, which
moves forward one second per change, so change timestamps are unique and later than every seeded one.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from decimal import Decimal
from typing import Any

from syncfabric.sandbox.sap_odata.entities import SETS, EntitySet
from syncfabric.sandbox.sap_odata.query import Row, from_json

PLANTS = {"1010": ("101A", "1010", "EUR"), "1710": ("171A", "1710", "USD")}
"""Plant → (storage location, company code and purchasing organization, currency)."""
SUPPLIERS = ("Hanse Metallwerke GmbH", "Rheinland Kunststoff AG", "Pacific Fasteners Inc.",
             "Bay Area Electronics LLC", "Nordic Packaging AB", "Alpine Precision Parts GmbH")
_UNITS = ("PC", "PC", "KG", "M", "L")
_BASE = dt.datetime(2026, 10, 1, 6, 0, tzinfo=dt.UTC)
_MAX_LENGTH = {"CorrespncExternalReference": 12, "CorrespncInternalReference": 12, "Supplier": 10}
"""Header fields whose length SAP checks on creation (their MaxLength in the service's metadata)."""


def entity_set(name: str) -> EntitySet:
    for sets in SETS.values():
        if name in sets:
            return sets[name]
    raise KeyError(name)


class SapState:
    """Tables by entity set, each a dict from key tuple to row (Python values: str, Decimal, datetime, bool)."""

    def __init__(self, seed: int = 42, products: int = 40) -> None:
        self.seed = seed
        self.product_count = products
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tables: dict[str, dict[tuple[str, ...], Row]] = {
                name: {} for sets in SETS.values() for name in sets}
            self.clock = _BASE
            self._generate(random.Random(self.seed))
            self._generate_boms(random.Random(self.seed + 1))
            self.clock = _BASE + dt.timedelta(days=30)

    def tick(self) -> dt.datetime:
        self.clock += dt.timedelta(seconds=1)
        return self.clock

    # ---- reading ---------------------------------------------------------------------------------------------

    def rows(self, name: str) -> list[Row]:
        with self.lock:
            table = self.tables[name]
            return [dict(table[key]) for key in sorted(table)]

    def get(self, name: str, key: tuple[str, ...]) -> Row | None:
        with self.lock:
            row = self.tables[name].get(key)
            return None if row is None else dict(row)

    def navigate(self, name: str, row: Row, nav: str) -> list[Row] | Row | None:
        navigation = entity_set(name).navigation[nav]
        wanted = {target: row.get(source) for source, target in navigation.on}
        found = [other for other in self.rows(navigation.target)
                 if all(other.get(field) == value for field, value in wanted.items())]
        if navigation.many:
            return found
        return found[0] if found else None

    # ---- writing ---------------------------------------------------------------------------------------------

    def put(self, name: str, row: Row) -> Row:
        spec = entity_set(name)
        full = {prop: row.get(prop, "" if edm == "Edm.String" else None) for prop, edm in spec.properties.items()}
        with self.lock:
            self.tables[name][tuple(str(full[key]) for key in spec.keys)] = full
        return full

    def update(self, name: str, key: tuple[str, ...], changes: dict[str, Any]) -> Row:
        """Change some properties (OData MERGE/PATCH); keys cannot change. KeyError if the row is missing,
        ValueError naming a bad property."""
        spec = entity_set(name)
        with self.lock:
            row = self.tables[name][key]
            for prop, value in changes.items():
                if prop == "__metadata":
                    continue
                if prop not in spec.properties:
                    raise ValueError(f"property {prop} is not part of {spec.type_name}")
                if prop in spec.keys and str(value) != row[prop]:
                    raise ValueError(f"key property {prop} cannot be changed")
                row[prop] = from_json(spec.properties[prop], value, prop)
            self._touch(name, row)
            return dict(row)

    def _touch(self, name: str, row: Row) -> None:
        """Stamp a change where SAP would: the row's own timestamp, or its product's / purchase order's."""
        now = self.tick()
        if "LastChangeDateTime" in row:
            row["LastChangeDateTime"] = now
        if name in ("A_Product", "A_ProductDescription", "A_ProductPlant", "A_ProductSupplyPlanning"):
            product = self.tables["A_Product"].get((row["Product"],))
            if product is not None:
                product["LastChangeDateTime"] = now
                product["LastChangeDate"] = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if name == "A_PurchaseOrderItem":
            header = self.tables["A_PurchaseOrder"].get((row["PurchaseOrder"],))
            if header is not None:
                header["LastChangeDateTime"] = now

    def set_stock(self, material: str, plant: str, quantity: Decimal, stock_type: str = "01") -> None:
        """A goods movement: the stock of a material in its plant's storage location becomes ``quantity``."""
        location = PLANTS[plant][0]
        with self.lock:
            for row in self.tables["A_MatlStkInAcctMod"].values():
                if (row["Material"], row["Plant"], row["StorageLocation"], row["InventoryStockType"]) == (
                        material, plant, location, stock_type):
                    row["MatlWrhsStkQtyInMatlBaseUnit"] = quantity
                    return
            unit = self.tables["A_Product"][(material,)]["BaseUnit"]
            self.put("A_MatlStkInAcctMod", _stock(material, plant, location, stock_type, unit, quantity))

    def create_purchase_order(self, body: dict[str, Any], user: str) -> Row:
        """Deep insert of a purchase order with its items (and their schedule lines). ValueError with SAP's
        message when a reference is unknown or a required value is missing."""
        items = body.get("to_PurchaseOrderItem") or []
        if isinstance(items, dict):
            items = items.get("results", [])
        if not items:
            raise ValueError("ME/083|Enter at least one item (to_PurchaseOrderItem)")
        for name, limit in _MAX_LENGTH.items():
            if len(str(body.get(name) or "")) > limit:
                raise ValueError(f"/IWBEP/CM_MGW_RT/004|Property {name} has invalid value '{body[name]}': "
                                 f"longer than {limit} characters")
        with self.lock:
            supplier = str(body.get("Supplier") or "")
            if (supplier,) not in self.tables["A_Supplier"]:
                raise ValueError(f"06/321|Supplier {supplier or '(empty)'} does not exist")
            number = f"45{len(self.tables['A_PurchaseOrder']) + 1:08d}"
            while (number,) in self.tables["A_PurchaseOrder"]:
                number = str(int(number) + 1)
            header_spec = entity_set("A_PurchaseOrder")
            header = {prop: from_json(edm, body[prop], prop) for prop, edm in header_spec.properties.items()
                      if prop in body}
            now = self.tick()
            header.update(PurchaseOrder=number, CreatedByUser=user, CreationDate=_day(now), LastChangeDateTime=now,
                          PurchasingProcessingStatus="05")
            header.setdefault("PurchaseOrderType", "NB")
            header.setdefault("PurchaseOrderDate", _day(now))
            rows = []
            for index, item in enumerate(items, start=1):
                line = str(item.get("PurchaseOrderItem") or index * 10)
                material, plant = str(item.get("Material") or ""), str(item.get("Plant") or "")
                if (material, plant) not in self.tables["A_ProductPlant"]:
                    raise ValueError(f"ME/062|Material {material} is not maintained in plant {plant} (item {line})")
                item_spec = entity_set("A_PurchaseOrderItem")
                row = {prop: from_json(edm, item[prop], prop) for prop, edm in item_spec.properties.items()
                       if prop in item}
                if row.get("OrderQuantity") is None or row["OrderQuantity"] <= 0:
                    raise ValueError(f"ME/044|Enter a quantity greater than zero (item {line})")
                row.update(PurchaseOrder=number, PurchaseOrderItem=line)
                row.setdefault("PurchaseOrderQuantityUnit", self.tables["A_Product"][(material,)]["BaseUnit"])
                row.setdefault("DocumentCurrency", header.get("DocumentCurrency", ""))
                schedules = item.get("to_ScheduleLine") or []
                if isinstance(schedules, dict):
                    schedules = schedules.get("results", [])
                lines = []
                for s_index, schedule in enumerate(schedules or [{}], start=1):
                    delivery = schedule.get("ScheduleLineDeliveryDate")
                    lines.append({
                        "PurchasingDocument": number, "PurchasingDocumentItem": line,
                        "ScheduleLine": str(schedule.get("ScheduleLine") or s_index), "DelivDateCategory": "1",
                        "ScheduleLineDeliveryDate": from_json("Edm.DateTime", delivery, "ScheduleLineDeliveryDate")
                        if delivery else _day(now + dt.timedelta(days=14)),
                        "PurchaseOrderQuantityUnit": row["PurchaseOrderQuantityUnit"],
                        "ScheduleLineOrderQuantity": from_json(
                            "Edm.Decimal", schedule.get("ScheduleLineOrderQuantity", row["OrderQuantity"]),
                            "ScheduleLineOrderQuantity"),
                    })
                rows.append((row, lines))
            created = self.put("A_PurchaseOrder", header)
            for row, lines in rows:
                self.put("A_PurchaseOrderItem", row)
                for schedule in lines:
                    self.put("A_PurchaseOrderScheduleLine", schedule)
            return created

    def create_planned_order(self, body: dict[str, Any], user: str) -> Row:
        """A planned order for in-house production, numbered by SAP; ValueError with SAP's message when the
        material is not planned in the plant, the quantity is not positive or a date is missing."""
        del user
        spec = entity_set("A_PlannedOrder")
        row = {prop: from_json(edm, body[prop], prop) for prop, edm in spec.properties.items()
               if prop in body and prop != "PlannedOrder"}
        material, plant = str(row.get("Material") or ""), str(row.get("MRPPlant") or row.get("ProductionPlant") or "")
        with self.lock:
            if (material, plant) not in self.tables["A_ProductPlant"]:
                raise ValueError(f"61/012|Material {material} is not maintained in plant {plant}")
            if row.get("TotalQuantity") is None or row["TotalQuantity"] <= 0:
                raise ValueError("61/101|Enter a total quantity greater than zero")
            if row.get("PlndOrderPlannedEndDate") is None:
                raise ValueError("61/040|Enter the order finish date (PlndOrderPlannedEndDate)")
            now = self.tick()
            table = self.tables.setdefault("A_PlannedOrder", {})
            number = f"{len(table) + 1:010d}"
            while (number,) in table:
                number = f"{int(number) + 1:010d}"
            row.update(PlannedOrder=number, MRPPlant=plant, LastChangeDateTime=now, PlannedOrderOpeningDate=_day(now))
            row.setdefault("ProductionPlant", plant)
            row.setdefault("PlannedOrderType", "LA")
            row.setdefault("MaterialProcurementCategory", "E")
            row.setdefault("BaseUnit", self.tables["A_Product"][(material,)]["BaseUnit"])
            return self.put("A_PlannedOrder", row)

    # ---- seed ------------------------------------------------------------------------------------------------

    def _generate_boms(self, rng: random.Random) -> None:
        """A production BOM (usage 1, one variant) for every finished product made in a plant: two or three of
        the plant's raw materials (its own seed, so the rest of the seeded data stays as it was)."""
        plants = self.tables["A_ProductPlant"]
        for number, (product, plant) in enumerate(sorted(key for key, row in plants.items()
                                                         if row["ProcurementType"] == "E"), start=1):
            raw = sorted(key[0] for key in plants if key[1] == plant and key[0].startswith("RM"))
            if not raw:
                continue
            header = {"BillOfMaterial": f"{number:08d}", "BillOfMaterialCategory": "M", "BillOfMaterialVariant": "1",
                      "BillOfMaterialVersion": "", "EngineeringChangeDocument": "", "Material": product,
                      "Plant": plant, "BillOfMaterialVariantUsage": "1", "IsMarkedForDeletion": False,
                      "HeaderValidityStartDate": _day(_BASE), "BOMHeaderBaseUnit": "PC",
                      "BOMHeaderQuantityInBaseUnit": Decimal(1)}
            self.put("MaterialBOM", header)
            for index, component in enumerate(rng.sample(raw, k=min(len(raw), rng.randint(2, 3))), start=1):
                self.put("MaterialBOMItem", {
                    **{name: header[name] for name in ("BillOfMaterial", "BillOfMaterialCategory",
                                                       "BillOfMaterialVariant", "BillOfMaterialVersion",
                                                       "Material", "Plant")},
                    "BillOfMaterialItemNodeNumber": str(index), "HeaderChangeDocument": "",
                    "BillOfMaterialComponent": component, "BillOfMaterialItemCategory": "L",
                    "BillOfMaterialItemNumber": f"{index * 10:04d}",
                    "BillOfMaterialItemUnit": self.tables["A_Product"][(component,)]["BaseUnit"],
                    "BillOfMaterialItemQuantity": Decimal(rng.randint(1, 4))})

    def _generate(self, rng: random.Random) -> None:
        for index, name in enumerate(SUPPLIERS, start=1):
            number = f"173{index:05d}"
            created = _day(_BASE - dt.timedelta(days=400 + index))
            self.put("A_BusinessPartner", {
                "BusinessPartner": number, "Supplier": number, "BusinessPartnerCategory": "2",
                "BusinessPartnerFullName": name, "BusinessPartnerGrouping": "BP02", "BusinessPartnerName": name,
                "CorrespondenceLanguage": "EN", "CreatedByUser": "MIGRATION", "CreationDate": created,
                "LastChangeDate": created, "OrganizationBPName1": name, "SearchTerm1": name.split()[0].upper(),
                "Language": "EN"})
            self.put("A_Supplier", {
                "Supplier": number, "CreatedByUser": "MIGRATION", "CreationDate": created,
                "PaymentIsBlockedForSupplier": False, "PostingIsBlocked": False, "PurchasingIsBlocked": index == 6,
                "SupplierAccountGroup": "SUPL", "SupplierFullName": name, "SupplierName": name,
                "VATRegistration": f"DE{rng.randint(100000000, 999999999)}", "DeletionIndicator": False,
                "Industry": ""})
        for index in range(1, self.product_count + 1):
            finished = index % 4 == 0
            product = f"{'FG' if finished else 'RM'}{1000 + index}"
            unit = "PC" if finished else rng.choice(_UNITS)
            changed = _BASE + dt.timedelta(minutes=7 * index)
            self.put("A_Product", {
                "Product": product, "ProductType": "FERT" if finished else "ROH", "CrossPlantStatus": "",
                "CreationDate": _day(_BASE - dt.timedelta(days=200)), "CreatedByUser": "MIGRATION",
                "LastChangeDate": _day(changed), "LastChangedByUser": "MIGRATION", "LastChangeDateTime": changed,
                "IsMarkedForDeletion": False, "ProductOldID": f"MAT-{index:06d}",
                "GrossWeight": Decimal(rng.randint(10, 5000)) / 100, "WeightUnit": "KG",
                "NetWeight": Decimal(rng.randint(5, 4000)) / 100, "ProductGroup": "L001" if finished else "L002",
                "BaseUnit": unit, "Division": "00", "IsBatchManagementRequired": False})
            kind = "Finished good" if finished else "Raw material"
            self.put("A_ProductDescription", {"Product": product, "Language": "EN",
                                              "ProductDescription": f"{kind} {index:03d}"})
            self.put("A_ProductDescription", {"Product": product, "Language": "DE",
                                              "ProductDescription": f"{'Fertigerzeugnis' if finished else 'Rohstoff'}"
                                                                    f" {index:03d}"})
            for plant in sorted(rng.sample(sorted(PLANTS), k=rng.randint(1, 2))):
                mrp = rng.choice(("PD", "PD", "VB", "ND"))
                procurement = "E" if finished else "F"
                self.put("A_ProductPlant", {
                    "Product": product, "Plant": plant, "PurchasingGroup": "001", "MRPType": mrp,
                    "MRPResponsible": rng.choice(("001", "002")), "ABCIndicator": rng.choice("ABC"),
                    "ProcurementType": procurement, "GoodsReceiptDuration": Decimal(rng.randint(0, 2)),
                    "IsMarkedForDeletion": False, "IsBatchManagementRequired": False,
                    "MinimumLotSizeQuantity": Decimal(rng.choice((0, 10, 50))),
                    "MaximumLotSizeQuantity": Decimal(0), "FixedLotSizeQuantity": Decimal(0)})
                self.put("A_ProductSupplyPlanning", {
                    "Product": product, "Plant": plant, "MRPType": mrp, "MRPResponsible": "001",
                    "LotSizingProcedure": rng.choice(("EX", "FX", "WB")), "ProcurementType": procurement,
                    "SafetyStockQuantity": Decimal(rng.randint(0, 200)),
                    "PlannedDeliveryDurationInDays": Decimal(rng.randint(2, 40)),
                    "GoodsReceiptDuration": Decimal(1), "BaseUnit": unit,
                    "FixedLotSizeQuantity": Decimal(0), "MaximumLotSizeQuantity": Decimal(0),
                    "MinimumLotSizeQuantity": Decimal(0)})
                location = PLANTS[plant][0]
                self.put("A_MatlStkInAcctMod", _stock(product, plant, location, "01", unit,
                                                      Decimal(rng.randint(0, 5000))))
                if rng.random() < 0.25:
                    self.put("A_MatlStkInAcctMod", _stock(product, plant, location, "02", unit,
                                                          Decimal(rng.randint(1, 50))))
        raw = sorted(key for key in self.tables["A_ProductPlant"] if key[0].startswith("RM"))
        for number in range(1, 13):
            plant = rng.choice(sorted(PLANTS))
            location, company, currency = PLANTS[plant]
            ordered = _BASE + dt.timedelta(days=number, hours=3)
            po = f"45{number:08d}"
            self.put("A_PurchaseOrder", {
                "PurchaseOrder": po, "CompanyCode": company, "PurchaseOrderType": "NB",
                "PurchasingProcessingStatus": "05", "CreatedByUser": "BUYER01", "CreationDate": _day(ordered),
                "LastChangeDateTime": ordered, "Supplier": f"173{rng.randint(1, 5):05d}", "Language": "EN",
                "PaymentTerms": "0004", "PurchasingOrganization": company, "PurchasingGroup": "001",
                "PurchaseOrderDate": _day(ordered), "DocumentCurrency": currency})
            candidates = [key for key in raw if key[1] == plant]
            for line_no, (product, _) in enumerate(rng.sample(candidates, k=min(len(candidates),
                                                                                rng.randint(1, 3))), start=1):
                line, quantity = str(line_no * 10), Decimal(rng.randint(1, 40) * 25)
                unit = self.tables["A_Product"][(product,)]["BaseUnit"]
                self.put("A_PurchaseOrderItem", {
                    "PurchaseOrder": po, "PurchaseOrderItem": line, "PurchaseOrderItemText": f"Raw material {product}",
                    "Plant": plant, "StorageLocation": location, "MaterialGroup": "L002", "OrderQuantity": quantity,
                    "PurchaseOrderQuantityUnit": unit, "NetPriceAmount": Decimal(rng.randint(100, 9000)) / 100,
                    "NetPriceQuantity": Decimal(1), "DocumentCurrency": currency, "IsCompletelyDelivered": False,
                    "Material": product})
                self.put("A_PurchaseOrderScheduleLine", {
                    "PurchasingDocument": po, "PurchasingDocumentItem": line, "ScheduleLine": "1",
                    "DelivDateCategory": "1", "ScheduleLineDeliveryDate": _day(ordered + dt.timedelta(days=21)),
                    "PurchaseOrderQuantityUnit": unit, "ScheduleLineOrderQuantity": quantity,
                    "ScheduleLineCommittedQuantity": Decimal(0)})
        finished = sorted(key for key in self.tables["A_ProductPlant"] if key[0].startswith("FG"))
        for number in range(1, 9):
            product, plant = rng.choice(finished)
            start = _day(_BASE + dt.timedelta(days=3 * number))
            self.put("A_ProductionOrder_2", {
                "ManufacturingOrder": f"{1000000 + number}", "ManufacturingOrderCategory": "10",
                "ManufacturingOrderType": "YBM1", "OrderIsCreated": True, "OrderIsReleased": number % 2 == 0,
                "OrderIsConfirmed": False, "OrderIsDelivered": False, "OrderIsDeleted": False,
                "OrderIsTechnicallyCompleted": False, "OrderIsClosed": False, "MfgOrderCreationDate": _day(_BASE),
                "LastChangeDateTime": _BASE + dt.timedelta(hours=number), "Material": product,
                "StorageLocation": PLANTS[plant][0], "ProductionPlant": plant, "MfgOrderPlannedStartDate": start,
                "MfgOrderPlannedEndDate": start + dt.timedelta(days=2),
                "MfgOrderPlannedTotalQty": Decimal(rng.randint(1, 20) * 10), "MfgOrderConfirmedYieldQty": Decimal(0),
                "ProductionUnit": "PC"})


def _stock(material: str, plant: str, location: str, stock_type: str, unit: str, quantity: Decimal) -> Row:
    return {"Material": material, "Plant": plant, "StorageLocation": location, "Batch": "", "Supplier": "",
            "Customer": "", "WBSElementInternalID": "00000000", "SDDocument": "", "SDDocumentItem": "000000",
            "InventorySpecialStockType": "", "InventoryStockType": stock_type, "WBSElementExternalID": "",
            "MaterialBaseUnit": unit, "MatlWrhsStkQtyInMatlBaseUnit": quantity}


def _day(moment: dt.datetime) -> dt.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
