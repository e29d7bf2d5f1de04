"""The estate file's shape: systems, domains, mappings and flows.

These Structs are the single source of truth: the JSON Schema shipped for editors (``syncfabric estate schema``,
``schemas/estate.schema.json``) is generated from them, and :func:`syncfabric.config.load_estate` decodes into them
after validation. Field help lives in ``msgspec.Meta(description=...)`` so that editors show it on hover.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
ENV_VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, max_length=64,
                                   description="lower-case name: letters, digits, '-', '_', '.'")]

SyncModel = Literal["batch_full", "batch_net_change", "near_real_time", "event", "request_response"]

Cron = Annotated[str, msgspec.Meta(
    description="a cron expression: 5 fields (minute hour day month weekday), 6 with seconds, or @hourly, @daily...",
    examples=["0 2 * * *", "*/5 * * * *", "@hourly"],
)]


def _doc(text: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **extra)


class EnvRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A secret given by reference: the name of the environment variable that holds it. Never the secret itself."""

    env: Annotated[str, msgspec.Meta(pattern=ENV_VARIABLE_PATTERN,
                                     description="name of the environment variable holding the secret",
                                     examples=["PLANNING_TOKEN"])]


class System(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A system syncfabric talks to."""

    kind: Annotated[str, _doc("connector kind: files, planning, ...")]
    description: Annotated[str, _doc("free text for people reading the estate")] = ""
    connection: Annotated[dict[str, Any], _doc(
        "connector-specific settings, checked against the connector kind's own configuration; "
        "never secrets (put those under credentials)")] = {}
    credentials: Annotated[dict[str, EnvRef], _doc(
        "secrets by environment-variable reference, e.g. token: {env: PLANNING_TOKEN}")] = {}


class Sla(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a domain promises its consumers: how fresh and how complete its data is."""

    freshness_minutes: Annotated[float, msgspec.Meta(
        gt=0, description="the newest change at a target may be at most this old")] | None = None
    completeness: Annotated[float, msgspec.Meta(
        ge=0, le=1, description="share of source keys that must be present and equal at the target after "
                                "reconciliation")] | None = None


class Domain(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How one canonical entity is kept in sync: its sync model, schedule and SLA."""

    entity: Annotated[str, _doc("canonical entity: item, location, inventory_balance, ...")]
    sync_model: Annotated[SyncModel, _doc("how changes travel: batch, net-change, near-real-time, events, "
                                          "or request-response")] = "batch_full"
    schedule: Cron | None = None
    sla: Annotated[Sla, _doc("freshness and completeness targets")] = Sla()


class Mapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How one system's records map to one canonical entity.

    ``fields`` maps each canonical field to: a source field name or dotted path (``"ITEM_NO"``, ``"header.id"``),
    ``{const: VALUE}`` for a constant, an expression (``{from: COL, code_map: NAME}``, ``{from: COL, default: X}``,
    ``{concat: [A, B], sep: "-"}``, ``{from: COL, split: {sep: "/", index: 0}}``, ``{from: COL, pad: {width: 8}}``,
    ``{from: COL, xref: {entity: item, derive: {strip_prefix: "MAT-"}}}``, ``{from: COL, datetime: {format: ...,
    location: SITE}}``, ``{function: NAME, args: [...]}``), a nested mapping for a nested record
    (``on_hand: {value: QTY, unit: UOM, convert_to: base_unit}``), or one line per element of a source list
    (``lines: {each: ITEMS, fields: {...}}``). See docs/mapping.md.
    """

    system: Annotated[Name, _doc("the system whose records this mapping reads")]
    entity: Annotated[str, _doc("the canonical entity it produces")]
    version: Annotated[int, msgspec.Meta(ge=1, description="raise it when the mapping changes; records keep it "
                                                           "as lineage")] = 1
    fields: Annotated[dict[str, Any], _doc(
        "canonical field -> source field name or dotted path, {const: VALUE}, an expression ({from: COL, "
        "code_map: NAME}, {from: COL, default: X}, concat, split, pad, xref, datetime, {function: NAME, args: [...]}), "
        "a nested mapping (on_hand: {value: QTY, unit: UOM, convert_to: base_unit}), or a list "
        "(lines: {each: ITEMS, fields: {...}})")]
    direction: Annotated[Literal["inbound", "outbound"], _doc(
        "inbound: the system's record -> a canonical record (fields are canonical fields); outbound: a canonical "
        "record -> the system's record (fields are the system's fields, paths read the canonical record, code "
        "maps translate back, xref looks the system's id up); see docs/mapping.md")] = "inbound"


class Watermark(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where an inbound net-change flow takes its watermark: the highest value of a source field it committed."""

    field: Annotated[str, _doc("the source field holding the last change time (or a change counter)",
                               examples=["last_modified_at", "write_date"])]
    overlap_seconds: Annotated[float, msgspec.Meta(
        ge=0, description="read again this far back from the watermark, for changes committed late; "
                          "records read twice are absorbed by their content hash")] = 300.0

class RetrySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How an outbound flow retries a transient failure (timeout, 429, 5xx): capped exponential backoff with jitter.
    The wait before attempt n+1 is min(base_delay * 2^(n-1), max_delay), spread by +/- jitter; a system's
    Retry-After wins (capped too)."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100, description="attempts per batch, the first included")] = 5
    base_delay_seconds: Annotated[float, msgspec.Meta(ge=0, description="wait after the first failed attempt")] = 0.5
    max_delay_seconds: Annotated[float, msgspec.Meta(ge=0, description="the longest wait between attempts")] = 30.0
    jitter: Annotated[float, msgspec.Meta(ge=0, le=1, description="random spread, as a fraction of the wait")] = 0.2


class FallbackSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """When a streaming flow gives up on its channel and catches up in batches instead, and when it returns.

    The flow falls back when any threshold given is passed: its oldest undelivered change is older than
    ``lag_seconds``, the share of failed batches among the last ``window`` is above ``error_rate``, or the target
    has failed without a success for ``outage_seconds``. In fallback it sends net changes from its checkpoint every
    ``catch_up_interval_seconds``, checks the target against the store, and streams again once a catch-up went
    through and the lag is under the threshold."""

    lag_seconds: Annotated[float, msgspec.Meta(gt=0, description="oldest undelivered change, in seconds")] \
        | None = None
    error_rate: Annotated[float, msgspec.Meta(gt=0, le=1, description="failed share of the last window of "
                                                                      "batches")] | None = None
    outage_seconds: Annotated[float, msgspec.Meta(gt=0, description="failing without a success for this long")] \
        | None = 60.0
    window: Annotated[int, msgspec.Meta(ge=1, le=10_000, description="batches the error rate is taken over")] = 20
    catch_up_interval_seconds: Annotated[float, msgspec.Meta(
        gt=0, description="in fallback: how often a batch catch-up runs")] = 30.0
    reconcile: Annotated[bool, _doc(
        "after a catch-up, compare what the target holds with the store (needs a target that reads back)")] = True


class DeliverySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How an outbound flow delivers: polling interval when it streams, retry policy, fallback policy."""

    poll_interval_seconds: Annotated[float, msgspec.Meta(
        gt=0, le=3600, description="streaming: how often the change log is looked at when caught up")] = 0.2
    retry: Annotated[RetrySpec, _doc("transient failures: attempts and backoff")] = RetrySpec()
    fallback: Annotated[FallbackSpec, _doc("streaming: when to fall back to batch catch-up")] | None = None


class PlanReviewSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Exceptions a planner reviews before a proposed planned order is written: an order breaking any of these
    waits (an open dead letter naming why) until `syncfabric plan approve`; the others are approved as written."""

    max_quantity: Annotated[float, msgspec.Meta(gt=0, description="orders above this quantity wait")] | None = None
    past_due: Annotated[bool, _doc("orders whose due date is already past wait")] = True


class WriteBackSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Outbound planned orders: the plants whose ERP this flow writes to, and the planner review on the way."""

    locations: Annotated[list[str], _doc(
        "canonical location ids this ERP owns; planned orders of other locations are left to their own ERP's "
        "flow (empty: every location)")] = []
    review: Annotated[PlanReviewSpec, _doc("which proposed orders wait for a planner")] | None = None


class Flow(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A movement of records: ``inbound`` (system → canonical store) or ``outbound`` (store → system)."""

    direction: Annotated[Literal["inbound", "outbound"], _doc(
        "inbound: system -> canonical store; outbound: canonical store -> system")]
    system: Annotated[Name, _doc("the system read from (inbound) or written to (outbound)")]
    entities: Annotated[list[str], msgspec.Meta(
        min_length=1, description="canonical entities this flow moves; an inbound flow moves exactly one")]
    mode: Annotated[Literal["full", "changes", "plan_cut"], _doc(
        "inbound: full reads every record (missing keys become deletions when the snapshot is complete), "
        "changes reads what changed since the checkpoint; outbound: full sends the current state, "
        "changes sends changes since the target's checkpoint, plan_cut sends a consistent snapshot of all its "
        "entities as of one change-log sequence, in dependency order")] = "changes"
    source: Annotated[str, _doc(
        "inbound: the system's name for what is read (a file pattern, a table, an endpoint); "
        "defaults to the entity")] | None = None
    mapping: Annotated[Name, _doc("inbound: the mapping to apply (required); outbound: an outbound mapping "
                                  "(direction: outbound) that shapes each record for the target (optional)")] \
        | None = None
    schedule: Cron | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=100_000, description="records per page and per commit")] = 1000
    watermark: Annotated[Watermark, _doc(
        "inbound changes: take the watermark from the data (a field of the source records) instead of the "
        "connector's cursor, re-reading an overlap window for late commits")] | None = None
    missed: Annotated[Literal["skip", "run_once"], _doc(
        "scheduled runs missed while no scheduler ran or while a run overran: skip them, or run once to catch "
        "up")] = "skip"
    keep_raw: Annotated[bool, _doc(
        "inbound: keep the raw record behind each stored record, so that `mapping diff` can re-map it with an "
        "edited mapping (one row of raw JSON per key, written with the record)")] = True
    delivery: Annotated[DeliverySpec, _doc(
        "outbound: retry policy, and how the flow streams (syncfabric deliver) and falls back")] = DeliverySpec()
    write_back: Annotated[WriteBackSpec, _doc(
        "outbound planned orders: the plants this ERP owns and the planner review (docs/global-manufacturer.md)")] \
        | None = None
    parallel: Annotated[bool, _doc(
        "inbound full refresh: read and map the pages in a second process while this one writes the store (for "
        "mappings that only rename columns, in flows without rules, from connectors that can be handed to another "
        "process, such as files; other flows map in their own process)")] = False


Rounding = Literal["half_up", "half_even", "up", "down", "ceiling", "floor"]


class UnitSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A unit of measure of the estate: how quantities in it are rounded after conversion."""

    decimals: Annotated[int, msgspec.Meta(ge=0, le=12, description="decimal places kept after a conversion")] = 6
    rounding: Annotated[Rounding, _doc("how a converted quantity is rounded to its decimals")] = "half_up"


class Conversion(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``factor`` units of ``to`` make one ``from`` (1 BOX = 12 EA); the inverse is derived."""

    from_: Annotated[str, _doc("the unit converted from", examples=["BOX"])] = msgspec.field(name="from")
    to: Annotated[str, _doc("the unit converted to", examples=["EA"])]
    factor: Annotated[float | str, _doc("how many 'to' make one 'from' (a decimal; quote it to keep it exact)")]


class ItemUnits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One item's base unit and its own conversions (box of 12, pallet of 480, kg per each)."""

    base_unit: Annotated[str, _doc("the unit the item's quantities are converted to (convert_to: base_unit)")] \
        | None = None
    conversions: Annotated[list[Conversion], _doc("conversions of this item only; they win over global ones")] = []


class Units(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Units of measure: the global conversion table, per-item conversions, and rounding per unit."""

    units: Annotated[dict[str, UnitSpec], _doc(
        "rounding per unit (and units beyond the built-in table), by unit code")] = {}
    conversions: Annotated[list[Conversion], _doc("global conversions (1 DZ = 12 EA, 1 KG = 1000 G)")] = []
    items: Annotated[dict[str, ItemUnits], _doc("per canonical item id: base unit and item conversions")] = {}


class CodeMap(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A versioned translation of a system's codes (order status, plant code) to canonical values."""

    version: Annotated[int, msgspec.Meta(ge=1, description="raise it when the values change; records keep it "
                                                           "as lineage")] = 1
    values: Annotated[dict[str, Any], _doc("system code -> canonical value; an unmapped code is an error")]
    description: Annotated[str, _doc("free text for people reading the estate")] = ""


RuleKind = Literal["required", "range", "reference", "item_location", "custom"]
Severity = Literal["reject", "warn"]
FieldPath = Annotated[str, msgspec.Meta(
    min_length=1, description="a field of the canonical record: a name, a dotted path, [*] for every line",
    examples=["on_hand", "lines[*].quantity", "lines[*].schedule[*].delivery_date"])]


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A data-quality rule on the canonical records of one entity, checked after mapping.

    ``required``: ``field`` must have a value. ``range``: ``field`` (a number, or a quantity's value) within
    ``min``/``max``. ``reference``: the value of ``field`` (or of ``key``, several fields joined) must be a key of
    ``entity`` in the store. ``item_location``: the item of ``item`` must be valid at the location of ``location``
    (an item_location record exists, and its ``valid_from`` is not after the record's ``date`` field).
    ``custom``: a registered Python function (``function: NAME`` or ``module:function``).
    """

    kind: Annotated[RuleKind, _doc("what the rule checks: required, range, reference, item_location or custom")]
    field: FieldPath | None = None
    min: Annotated[float | str, _doc("range: the smallest allowed value (inclusive)")] | None = None
    max: Annotated[float | str, _doc("range: the largest allowed value (inclusive)")] | None = None
    entity: Annotated[str, _doc("reference: the canonical entity the value must be a key of")] | None = None
    key: Annotated[list[FieldPath], _doc(
        "reference: fields whose values, joined by '|', form the referenced key (instead of field)")] = []
    item: Annotated[FieldPath, _doc("item_location: the field holding the item id")] = "item_id"
    location: Annotated[FieldPath, _doc("item_location: the field holding the location id")] = "location_id"
    date: Annotated[FieldPath, _doc(
        "item_location: the field with the record's date, checked against the item-location's valid_from")] \
        | None = None
    function: Annotated[str, _doc("custom: a registered rule name or module:function")] | None = None
    severity: Annotated[Severity, _doc(
        "reject: the record goes to quarantine; warn: it passes, flagged and counted in the run")] = "reject"
    message: Annotated[str, _doc("replaces the rule's own description of a violation")] | None = None


class Estate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A whole estate: every system, domain, mapping and flow syncfabric runs for one manufacturer."""

    version: Annotated[Literal[1], _doc("version of the estate file format")] = 1
    name: Annotated[str, _doc("name of the estate, shown in the console and in logs")] = "estate"
    store: Annotated[str, _doc(
        "store URL (sqlite:///path/to.db or postgresql://host/db); a relative SQLite path is relative to the "
        "estate file's folder; a password belongs in SYNCFABRIC__STORE, not here")] = \
        "sqlite:///.syncfabric/syncfabric.db"
    bus: Annotated[str, _doc(
        "change-log fan-out for outbound consumers: nats://host:4222 relays it through NATS JetStream so many "
        "workers share the work; left out, consumers read the store's change log directly (embedded)")] \
        | None = None
    systems: Annotated[dict[Name, System], _doc("the systems syncfabric talks to, by name")]
    domains: Annotated[dict[Name, Domain], _doc("sync policy per canonical entity, by name")] = {}
    mappings: Annotated[dict[Name, Mapping], _doc("how each system's records map to canonical entities")] = {}
    flows: Annotated[dict[Name, Flow], _doc("the inbound and outbound movements of records, by name")] = {}
    units: Annotated[Units, _doc("units of measure: conversions (global and per item) and rounding")] = Units()
    code_maps: Annotated[dict[Name, CodeMap], _doc("versioned code translations used by mappings (code_map: NAME)")] \
        = {}
    rules: Annotated[dict[str, list[Rule]], _doc(
        "data-quality rules per canonical entity, checked on every inbound record and on replay")] = {}
