"""The SAP S/4HANA OData v2 services the emulator serves: entity sets, their properties (with the names and EDM
types SAP publishes for them) and navigation properties.

Only a subset of each entity type's published properties is modelled, the ones integration scenarios use; every
name here is one SAP publishes in the service's metadata. ``$metadata`` is generated from these definitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

S, D, DT, DTO, B = "Edm.String", "Edm.Decimal", "Edm.DateTime", "Edm.DateTimeOffset", "Edm.Boolean"


@dataclass(frozen=True)
class Navigation:
    """A navigation property: the rows of ``target`` whose ``on`` fields equal the source row's fields."""

    target: str
    on: tuple[tuple[str, str], ...]
    """(source property, target property) pairs."""
    many: bool = True


@dataclass(frozen=True)
class EntitySet:
    name: str
    service: str
    keys: tuple[str, ...]
    properties: dict[str, str]
    """Property name → EDM type, in the order SAP lists them."""
    navigation: dict[str, Navigation] = field(default_factory=dict)
    creatable: bool = False
    updatable: bool = False

    @property
    def type_name(self) -> str:
        return f"{self.name}Type"


def _props(*groups: tuple[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for names, edm in groups:
        out.update(dict.fromkeys(names.split(), edm))
    return out


PRODUCT, STOCK, PURCHASING, PRODUCTION, PARTNER, BOM = (
    "API_PRODUCT_SRV", "API_MATERIAL_STOCK_SRV", "API_PURCHASEORDER_PROCESS_SRV", "API_PRODUCTION_ORDER_2_SRV",
    "API_BUSINESS_PARTNER", "API_BILL_OF_MATERIAL_SRV",
)
_BOM_KEYS = ("BillOfMaterial", "BillOfMaterialCategory", "BillOfMaterialVariant", "BillOfMaterialVersion")

_SETS = [
    EntitySet("A_Product", PRODUCT, ("Product",), _props(
        ("Product ProductType CrossPlantStatus", S), ("CreationDate", DT), ("CreatedByUser", S),
        ("LastChangeDate", DT), ("LastChangedByUser", S), ("LastChangeDateTime", DTO), ("IsMarkedForDeletion", B),
        ("ProductOldID", S), ("GrossWeight", D), ("WeightUnit", S), ("NetWeight", D),
        ("ProductGroup BaseUnit Division", S), ("IsBatchManagementRequired", B),
    ), {
        "to_Description": Navigation("A_ProductDescription", (("Product", "Product"),)),
        "to_Plant": Navigation("A_ProductPlant", (("Product", "Product"),)),
    }, updatable=True),
    EntitySet("A_ProductDescription", PRODUCT, ("Product", "Language"),
              _props(("Product Language ProductDescription", S)), updatable=True),
    EntitySet("A_ProductPlant", PRODUCT, ("Product", "Plant"), _props(
        ("Product Plant PurchasingGroup", S), ("GoodsReceiptDuration", D), ("IsMarkedForDeletion", B),
        ("MRPType MRPResponsible ABCIndicator", S),
        ("MinimumLotSizeQuantity MaximumLotSizeQuantity FixedLotSizeQuantity", D), ("ProcurementType", S),
        ("IsBatchManagementRequired", B),
    ), {
        "to_ProductSupplyPlanning": Navigation(
            "A_ProductSupplyPlanning", (("Product", "Product"), ("Plant", "Plant")), many=False),
    }, updatable=True),
    EntitySet("A_ProductSupplyPlanning", PRODUCT, ("Product", "Plant"), _props(
        ("Product Plant", S), ("FixedLotSizeQuantity MaximumLotSizeQuantity MinimumLotSizeQuantity", D),
        ("LotSizingProcedure MRPType MRPResponsible", S), ("SafetyStockQuantity", D),
        ("PlannedDeliveryDurationInDays", D), ("ProcurementType", S), ("GoodsReceiptDuration", D), ("BaseUnit", S),
    ), updatable=True),
    EntitySet("A_MatlStkInAcctMod", STOCK, (
        "Material", "Plant", "StorageLocation", "Batch", "Supplier", "Customer", "WBSElementInternalID",
        "SDDocument", "SDDocumentItem", "InventorySpecialStockType", "InventoryStockType",
    ), _props(
        ("Material Plant StorageLocation Batch Supplier Customer WBSElementInternalID SDDocument SDDocumentItem "
         "InventorySpecialStockType InventoryStockType WBSElementExternalID MaterialBaseUnit", S),
        ("MatlWrhsStkQtyInMatlBaseUnit", D),
    )),
    EntitySet("A_PurchaseOrder", PURCHASING, ("PurchaseOrder",), _props(
        ("PurchaseOrder CompanyCode PurchaseOrderType PurchasingDocumentDeletionCode PurchasingProcessingStatus "
         "CreatedByUser", S), ("CreationDate", DT), ("LastChangeDateTime", DTO), ("Supplier Language PaymentTerms "
         "PurchasingOrganization PurchasingGroup", S), ("PurchaseOrderDate", DT),
        ("DocumentCurrency CorrespncExternalReference CorrespncInternalReference", S),
    ), {"to_PurchaseOrderItem": Navigation("A_PurchaseOrderItem", (("PurchaseOrder", "PurchaseOrder"),))},
        creatable=True),
    EntitySet("A_PurchaseOrderItem", PURCHASING, ("PurchaseOrder", "PurchaseOrderItem"), _props(
        ("PurchaseOrder PurchaseOrderItem PurchasingDocumentDeletionCode PurchaseOrderItemText Plant "
         "StorageLocation MaterialGroup", S), ("OrderQuantity", D), ("PurchaseOrderQuantityUnit", S),
        ("NetPriceAmount NetPriceQuantity", D), ("DocumentCurrency", S), ("IsCompletelyDelivered", B),
        ("Material", S),
    ), {
        "to_PurchaseOrder": Navigation("A_PurchaseOrder", (("PurchaseOrder", "PurchaseOrder"),), many=False),
        "to_ScheduleLine": Navigation("A_PurchaseOrderScheduleLine", (
            ("PurchaseOrder", "PurchasingDocument"), ("PurchaseOrderItem", "PurchasingDocumentItem"))),
    }),
    EntitySet("A_PurchaseOrderScheduleLine", PURCHASING, ("PurchasingDocument", "PurchasingDocumentItem",
                                                          "ScheduleLine"), _props(
        ("PurchasingDocument PurchasingDocumentItem ScheduleLine DelivDateCategory", S),
        ("ScheduleLineDeliveryDate", DT), ("PurchaseOrderQuantityUnit", S),
        ("ScheduleLineOrderQuantity ScheduleLineCommittedQuantity", D),
    )),
    EntitySet("A_ProductionOrder_2", PRODUCTION, ("ManufacturingOrder",), _props(
        ("ManufacturingOrder ManufacturingOrderCategory ManufacturingOrderType", S),
        ("OrderIsCreated OrderIsReleased OrderIsConfirmed OrderIsDelivered OrderIsDeleted "
         "OrderIsTechnicallyCompleted OrderIsClosed", B), ("MfgOrderCreationDate", DT), ("LastChangeDateTime", DTO),
        ("Material StorageLocation ProductionPlant", S), ("MfgOrderPlannedStartDate MfgOrderPlannedEndDate", DT),
        ("MfgOrderPlannedTotalQty MfgOrderConfirmedYieldQty", D), ("ProductionUnit", S),
    )),
    EntitySet("A_PlannedOrder", PRODUCTION, ("PlannedOrder",), _props(
        ("PlannedOrder PlannedOrderType PlannedOrderProfile Material ProductionPlant MRPPlant "
         "MaterialProcurementCategory BaseUnit", S), ("TotalQuantity", D),
        ("PlndOrderPlannedStartDate PlndOrderPlannedEndDate PlannedOrderOpeningDate", DT),
        ("LastChangeDateTime", DTO), ("MRPController", S),
        ("YY1_PlanningReference", S),  # a key user's custom field (Custom Fields app), enabled for this API
    ), creatable=True),
    EntitySet("MaterialBOM", BOM, (*_BOM_KEYS, "EngineeringChangeDocument", "Material", "Plant"), _props(
        (" ".join((*_BOM_KEYS, "EngineeringChangeDocument", "Material", "Plant", "BillOfMaterialVariantUsage")), S),
        ("IsMarkedForDeletion", B), ("HeaderValidityStartDate", DT), ("BOMHeaderBaseUnit", S),
        ("BOMHeaderQuantityInBaseUnit", D),
    ), {"to_BillOfMaterialItem": Navigation("MaterialBOMItem", tuple(
        (name, name) for name in (*_BOM_KEYS, "Material", "Plant")))}),
    EntitySet("MaterialBOMItem", BOM, (*_BOM_KEYS, "BillOfMaterialItemNodeNumber", "HeaderChangeDocument",
                                       "Material", "Plant"), _props(
        (" ".join((*_BOM_KEYS, "BillOfMaterialItemNodeNumber", "HeaderChangeDocument", "Material", "Plant",
                   "BillOfMaterialComponent", "BillOfMaterialItemCategory", "BillOfMaterialItemNumber",
                   "BillOfMaterialItemUnit")), S), ("BillOfMaterialItemQuantity", D),
    )),
    EntitySet("A_BusinessPartner", PARTNER, ("BusinessPartner",), _props(
        ("BusinessPartner Customer Supplier BusinessPartnerCategory BusinessPartnerFullName "
         "BusinessPartnerGrouping BusinessPartnerName CorrespondenceLanguage CreatedByUser", S),
        ("CreationDate LastChangeDate", DT), ("OrganizationBPName1 SearchTerm1 Language", S),
    ), {"to_Supplier": Navigation("A_Supplier", (("Supplier", "Supplier"),), many=False)}),
    EntitySet("A_Supplier", PARTNER, ("Supplier",), _props(
        ("Supplier CreatedByUser", S), ("CreationDate", DT), ("Customer", S),
        ("PaymentIsBlockedForSupplier PostingIsBlocked PurchasingIsBlocked", B),
        ("SupplierAccountGroup SupplierFullName SupplierName VATRegistration", S), ("DeletionIndicator", B),
        ("Industry", S),
    )),
]

SETS: dict[str, dict[str, EntitySet]] = {}
for _set in _SETS:
    SETS.setdefault(_set.service, {})[_set.name] = _set
SERVICES = tuple(SETS)
