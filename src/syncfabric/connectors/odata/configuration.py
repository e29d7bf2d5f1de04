"""Configuration of an SAP S/4HANA system reached through its OData v2 APIs.

Credentials (``user``, ``password`` for basic auth) are given under the system's ``credentials`` by
environment-variable reference, never here.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from syncfabric.connectors.limits import Limits


class EntitySpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One readable source: an entity set of a service and how to ask for it. A flow names it as its ``source``."""

    service: str
    """The OData service (``API_PRODUCT_SRV``)."""
    entity_set: str
    """The entity set in that service (``A_Product``)."""
    select: list[str] = []
    """Properties to fetch (``$select``); empty: all. Name expanded navigation properties here too."""
    expand: list[str] = []
    """Navigation properties to fetch inline (``$expand``), nested with ``/`` (``to_Plant/to_ProductSupplyPlanning``);
    they arrive as lists (or one record) under their own name."""
    filter: str | None = None
    """A ``$filter`` every read of this source applies (``InventoryStockType eq '01'``)."""
    watermark: str | None = None
    """The change timestamp property that net-change reads use (``LastChangeDateTime``); none: full reads only."""
    watermark_type: Literal["datetimeoffset", "datetime"] = "datetimeoffset"
    """EDM type of the watermark: ``datetimeoffset`` (Edm.DateTimeOffset) or ``datetime`` (Edm.DateTime)."""
    key: list[str] = []
    """Key properties of the entity set, in order; needed with ``watermark`` to page net-change reads exactly."""
    stamp_field: str | None = None
    """If set, every record gets this field with the time it was read (UTC, ISO 8601): for entity sets without a
    timestamp of their own, such as stock (``A_MatlStkInAcctMod``)."""


class PurchasingOrg(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The organisational data a purchase order for one plant is created with."""

    company_code: str
    """Company code (``CompanyCode``) the plant belongs to."""
    purchasing_organization: str
    """Purchasing organisation (``PurchasingOrganization``)."""
    purchasing_group: str = "001"
    """Purchasing group (``PurchasingGroup``)."""
    currency: str | None = None
    """Document currency (``DocumentCurrency``); none: the supplier's default in SAP."""


class PurchaseOrders(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How planned orders (canonical ``planned_order``, ``order_type: buy``) become SAP purchase orders."""

    plants: dict[str, PurchasingOrg]
    """Per plant (canonical location id = SAP plant), the company code and purchasing organisation to use."""
    purchase_order_type: str = "NB"
    """Purchase order type (``PurchaseOrderType``); NB is the standard purchase order."""
    reference_field: str = "CorrespncExternalReference"
    """The purchase order header field that carries the planned order id. Before creating, the connector looks for a
    purchase order with this reference, so a planned order re-sent after a crash never creates a second one."""
    statuses: list[str] = msgspec.field(default_factory=lambda: ["approved", "released"])
    """Planned order statuses that are created in SAP; others are accepted and left alone until they change."""
    service: str = "API_PURCHASEORDER_PROCESS_SRV"
    """The purchase order service."""


class PlannedOrders(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How planned orders of type ``make`` become SAP planned orders for in-house production (``A_PlannedOrder``),
    which production planners convert into production orders in SAP."""

    planned_order_type: str = "LA"
    """Planned order type (``PlannedOrderType``); LA is the standard planned order."""
    statuses: list[str] = msgspec.field(default_factory=lambda: ["approved", "released"])
    """Planned order statuses that are created in SAP; others are accepted and left alone until they change."""
    service: str = "API_PRODUCTION_ORDER_2_SRV"
    """The service that holds ``A_PlannedOrder``."""
    reference_field: str | None = None
    """A field of ``A_PlannedOrder`` that carries the planned order id: standard SAP has none, so this is a key-user
    custom field (``Custom Fields`` app, business context of the planned order, enabled for the API), such as
    ``YY1_PlanningReference``. With it, the connector writes the id on create and looks it up before creating, so
    a planned order re-sent after a crash between SAP's commit and ours finds the SAP planned order it became, even
    if its quantity or dates changed meanwhile. Without it, a re-sent order is found through the cross-reference,
    or else by material, plant, type, finish date and quantity."""


class RetrySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Retries of throttled (429), failing (5xx) and timed-out reads; ``Retry-After`` is honoured."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    """Attempts per request, the first included."""
    base_delay: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    """Seconds before the second attempt; doubled for each further one."""
    max_delay: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    """Longest wait between two attempts, also for a longer ``Retry-After``."""


class ODataConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    base_url: str
    """Root URL of the system (``https://s4.example.com``); services are under ``<base_url><service_root>``."""
    service_root: str = "/sap/opu/odata/sap"
    """Path of the SAP Gateway service catalogue."""
    sap_client: str | None = None
    """SAP client (``sap-client`` query parameter, e.g. ``100``); none: the system's default client."""
    entities: dict[str, EntitySpec] = {}
    """Readable sources by name."""
    purchase_orders: PurchaseOrders | None = None
    """Write-back of planned orders as purchase orders; none: the system is read only."""
    planned_orders: PlannedOrders | None = None
    """Write-back of make planned orders as SAP planned orders; none: make orders are not written."""
    page_size: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 500
    """Records per request of a net-change read (``$top``); full reads follow the server's ``__next`` paging."""
    changes_overlap_seconds: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """A net-change read starts this many seconds before the last watermark, so that a change committed late with
    an earlier timestamp is not missed; records read twice write nothing."""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Limit for connecting and for each request; a timeout is retried."""
    verify_tls: bool = True
    """Check the system's TLS certificate. Turn off only for test systems with self-signed certificates."""
    retry: RetrySettings = RetrySettings()
    """Retries of transient failures."""
    limits: Limits | None = None
    """Request quota and concurrency limit for this system (shared by every flow of it in the process)."""
