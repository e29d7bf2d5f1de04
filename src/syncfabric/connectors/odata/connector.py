"""Reads SAP S/4HANA entity sets over OData v2 and writes planned orders back as purchase orders.

Reading: a flow's ``source`` names one of the connection's ``entities``. Raw records are the entity's JSON with
OData's wrapping removed: ``__metadata`` and deferred navigation links dropped, expanded navigation properties as
lists (``{"results": [...]}`` → ``[...]``) or one record, ``/Date(ms+0000)/`` as ISO 8601 UTC text, and an
``Edm.DateTime`` at midnight (SAP's dates) as a date (``2026-10-22``). Decimals stay text, as SAP sends them.

- ``read_full`` follows the server's ``__next`` links; the cursor of a page is the link to the next one, so an
  interrupted snapshot resumes where it stopped. The last page is ``complete`` and carries no cursor.
- ``read_changes`` asks for records whose watermark (``LastChangeDateTime``) is after the last one seen, less
  ``changes_overlap_seconds``, ordered by watermark and key, ``page_size`` at a time. Each further page starts
  after the last (watermark, key) read, so rows moving while the read runs are neither lost nor skipped; the
  cursor after a page is that (watermark, key), taken from the data, never from our clock.

Writing (``write("planned_order", ...)``): a buy planned order whose status is one of ``purchase_orders.statuses``
becomes a purchase order (deep insert of header, item and schedule line) carrying the planned order id in
``purchase_orders.reference_field``. Before creating, the connector looks the references up, so a planned order
sent again (a retry, a crash between SAP's commit and ours, a newer version) finds its purchase order instead of
creating a second one. The outcome links each planned order to its purchase order number; the outbound flow
stores that link in the cross-reference. A make planned order becomes an SAP planned order
(``A_PlannedOrder``) when ``planned_orders`` is configured (:mod:`.planned_orders`), found again by reference the
same way when ``planned_orders.reference_field`` names the custom field that carries it. SAP's refusal of one order
(unknown material, blocked supplier) rejects that order with SAP's message; throttling and outages raise a
TransientError, and the whole write is sent again.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from syncfabric.connectors.base import Capability, OutboundRecord, Page, RawRecord, WriteOutcome
from syncfabric.connectors.http import ClientConnector
from syncfabric.connectors.odata.client import ODataClient
from syncfabric.connectors.odata.configuration import EntitySpec, ODataConfig
from syncfabric.connectors.odata.exceptions import sap_message, translate_error
from syncfabric.connectors.odata.planned_orders import ENTITY_SET as PLANNED_SET
from syncfabric.connectors.odata.planned_orders import planned_order_body, same_order
from syncfabric.connectors.odata.purchase_orders import purchase_order_body, reference_filter
from syncfabric.errors import PermanentError, TransientError
from syncfabric.observe import clock

_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LOOKUP_CHUNK = 20


class ChangesCursor(msgspec.Struct, omit_defaults=True):
    """Where a net-change read stands: the last (watermark, key) read."""

    watermark: str
    after: list[str] = []


class ODataConnector(ClientConnector[ODataClient]):
    kind = "odata"
    capabilities = Capability.READ_FULL | Capability.READ_CHANGES | Capability.WRITE
    config_type = ODataConfig
    config: ODataConfig
    secret_names = ("user", "password")
    links_external_ids = True

    def make_client(self) -> ODataClient:
        return ODataClient(self.system, self.config, self.secrets.get("user"), self.secrets.get("password"))

    def test_connection(self) -> None:
        """Each configured service answers its service document with our credentials."""
        services = {spec.service for spec in self.config.entities.values()}
        if self.config.purchase_orders is not None:
            services.add(self.config.purchase_orders.service)
        for service in sorted(services) or ["API_PRODUCT_SRV"]:
            self.client.json(self.client.service_url(service), {}, entity=service)

    # ---- reading ---------------------------------------------------------------------------------------------

    def _spec(self, entity: str) -> EntitySpec:
        try:
            return self.config.entities[entity]
        except KeyError:
            known = ", ".join(sorted(self.config.entities)) or "none"
            raise PermanentError(f"unknown source {entity!r}; the connection's entities: {known}",
                                 system=self.system, entity=entity) from None

    def _query(self, spec: EntitySpec, extra: Sequence[str] = ()) -> dict[str, str]:
        params: dict[str, str] = {}
        if spec.select:
            params["$select"] = ",".join(dict.fromkeys([*spec.select, *extra]))
        if spec.expand:
            params["$expand"] = ",".join(spec.expand)
        if spec.filter:
            params["$filter"] = spec.filter
        return params

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        spec = self._spec(entity)
        url: str | None = cursor or self.client.service_url(spec.service, spec.entity_set)
        params: dict[str, str] | None = None if cursor else self._query(spec)
        while url is not None:
            body = self.client.json(url, params, entity=entity)
            following = body.get("__next")
            url, params = (self.client.relative(following) if following else None), None
            yield Page(self._records(spec, body.get("results", [])), cursor=url, complete=url is None)

    def read_changes(self, entity: str, since: str | None) -> Iterator[Page]:
        spec = self._spec(entity)
        if spec.watermark is None or not spec.key:
            raise PermanentError(f"source {entity!r} has no watermark and key configured; read it in full",
                                 system=self.system, entity=entity)
        start = _decode_cursor(since)
        condition = None
        if start is not None:
            begin = clock.parse_instant(start.watermark) - dt.timedelta(seconds=self.config.changes_overlap_seconds)
            condition = f"{spec.watermark} gt {_literal(spec.watermark_type, begin)}"
        cursor = since
        url = self.client.service_url(spec.service, spec.entity_set)
        while True:
            params = self._query(spec, extra=[spec.watermark, *spec.key])
            params["$filter"] = " and ".join(f"({part})" for part in (spec.filter, condition) if part)
            if not params["$filter"]:
                del params["$filter"]
            params["$orderby"] = ",".join(f"{name} asc" for name in (spec.watermark, *spec.key))
            params["$top"] = str(self.config.page_size)
            body = self.client.json(url, params, entity=entity)
            rows = body.get("results", [])
            records = self._records(spec, rows)
            if records:
                last = records[-1].data
                position = ChangesCursor(str(last[spec.watermark]), [str(last[name]) for name in spec.key])
                cursor = msgspec.json.encode(position).decode()
                condition = _after(spec, position)
            yield Page(records, cursor=cursor)
            if not rows or (len(rows) < self.config.page_size and not body.get("__next")):
                return

    def _records(self, spec: EntitySpec, rows: list[dict[str, Any]]) -> list[RawRecord]:
        stamp = _iso(clock.now()) if spec.stamp_field else None  # the read time, on the observability clock
        records = []
        for row in rows:
            data = plain(row)
            if spec.stamp_field:
                data[spec.stamp_field] = stamp
            uri = str(row.get("__metadata", {}).get("uri", ""))
            location = uri.rsplit("/", 1)[-1] if uri else spec.entity_set
            records.append(RawRecord(data, location=f"{spec.service}/{location}"))
        return records

    # ---- writing ---------------------------------------------------------------------------------------------

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        settings, planning = self.config.purchase_orders, self.config.planned_orders
        if entity != "planned_order" or (settings is None and planning is None):
            raise PermanentError(f"{self.system} writes planned_order (with purchase_orders or planned_orders "
                                 f"configured), not {entity!r}", system=self.system, entity=entity)
        outcome = WriteOutcome()
        bodies: dict[str, dict[str, Any]] = {}
        makes: dict[str, tuple[dict[str, Any], OutboundRecord]] = {}
        for record in records:
            payload = record.payload
            if payload is None:
                outcome.rejected[record.key] = ("deleting a planned order does not cancel a purchase order in SAP; "
                                                "cancel it there")
            elif payload.get("order_type") == "make" and planning is not None:
                if payload.get("status") not in planning.statuses:
                    outcome.accepted.append(record.key)
                    continue
                try:
                    makes[record.key] = (planned_order_body(record.key, payload, planning), record)
                except (KeyError, TypeError, ValueError) as exc:
                    outcome.rejected[record.key] = f"cannot create a planned order: {exc}"
            elif settings is None:
                outcome.rejected[record.key] = (f"{payload.get('order_type')} planned orders are not written to "
                                                f"{self.system} (no purchase_orders in its connection)")
            elif payload.get("status") not in settings.statuses:
                outcome.accepted.append(record.key)
            else:
                try:
                    bodies[record.key] = purchase_order_body(record.key, payload, settings)
                except (KeyError, TypeError, ValueError) as exc:
                    outcome.rejected[record.key] = f"cannot create a purchase order: {exc}"
        existing = self._existing(settings.service, "A_PurchaseOrder", "PurchaseOrder", settings.reference_field,
                                  list(bodies)) if settings is not None and bodies else {}
        for key, body in bodies.items():
            number = existing.get(key) or self._create(key, body)
            if number.startswith("!"):
                outcome.rejected[key] = number[1:]
                continue
            outcome.accepted.append(key)
            outcome.links[key] = number
        if makes:
            self._write_planned(makes, outcome)
        return outcome

    def _write_planned(self, makes: dict[str, tuple[dict[str, Any], OutboundRecord]], outcome: WriteOutcome) -> None:
        """Create the SAP planned orders not made yet (see :mod:`.planned_orders`); link every key to its own."""
        assert self.config.planned_orders is not None
        service, field = self.config.planned_orders.service, self.config.planned_orders.reference_field
        if field:  # our id is on the SAP planned order: look it up, create only what SAP does not hold
            existing = self._existing(service, PLANNED_SET, "PlannedOrder", field, list(makes))
            for key, (body, _) in makes.items():
                number = existing.get(key) or self._create(key, body, service=service, entity_set=PLANNED_SET,
                                                           number="PlannedOrder")
                if number.startswith("!"):
                    outcome.rejected[key] = number[1:]
                    continue
                outcome.accepted.append(key)
                outcome.links[key] = number
            return
        taken: set[str] = set()
        for key, (body, record) in makes.items():
            found = self._planned_candidates(service, body["Material"], body["MRPPlant"])
            number = next((str(row["PlannedOrder"]) for row in found if row["PlannedOrder"] == record.external_id),
                          None)
            if number is None and record.external_id is None:
                finish = str(plain(body["PlndOrderPlannedEndDate"]))
                number = next((str(row["PlannedOrder"]) for row in found if str(row["PlannedOrder"]) not in taken
                               and same_order(row, body, finish)), None)
            if number is None:
                number = self._create(key, body, service=service, entity_set=PLANNED_SET, number="PlannedOrder")
            if number.startswith("!"):
                outcome.rejected[key] = number[1:]
                continue
            taken.add(number)
            outcome.accepted.append(key)
            outcome.links[key] = number

    def _planned_candidates(self, service: str, material: str, plant: str) -> list[dict[str, Any]]:
        url: str | None = self.client.service_url(service, PLANNED_SET)
        params: dict[str, str] | None = {"$filter": f"Material eq {_quote(material)} and MRPPlant eq {_quote(plant)}"}
        rows: list[dict[str, Any]] = []
        while url is not None:
            body = self.client.json(url, params, entity=PLANNED_SET)
            rows += [plain(row) for row in body.get("results", [])]
            following = body.get("__next")
            url, params = (self.client.relative(following) if following else None), None
        return rows

    def _existing(self, service: str, entity_set: str, number: str, field: str,
                  references: list[str]) -> dict[str, str]:
        """Documents of ``entity_set`` already carrying these planned order references in ``field``: reference →
        the document's ``number`` (a purchase order's, an SAP planned order's)."""
        found: dict[str, str] = {}
        for start in range(0, len(references), _LOOKUP_CHUNK):
            chunk = references[start:start + _LOOKUP_CHUNK]
            url: str | None = self.client.service_url(service, entity_set)
            params: dict[str, str] | None = {"$filter": reference_filter(field, chunk),
                                             "$select": f"{number},{field}"}
            while url is not None:
                body = self.client.json(url, params, entity=entity_set)
                for row in body.get("results", []):
                    found.setdefault(str(row[field]), str(row[number]))
                following = body.get("__next")
                url, params = (self.client.relative(following) if following else None), None
        return found

    def _create(self, key: str, body: dict[str, Any], *, service: str | None = None,
                entity_set: str = "A_PurchaseOrder", number: str = "PurchaseOrder") -> str:
        """The new document's number (a purchase order's, by default), or ``!`` and SAP's reason when SAP refuses
        this order."""
        if service is None:
            assert self.config.purchase_orders is not None
            service = self.config.purchase_orders.service
        what = "purchase order" if entity_set == "A_PurchaseOrder" else "planned order"
        response = self.client.modify("POST", service, entity_set, body, entity=entity_set, key=key)
        if response.status_code == 201:
            try:
                return str(response.json()["d"][number])
            except (ValueError, KeyError, TypeError):
                raise PermanentError(f"SAP created a {what} but did not say its number",
                                     system=self.system, entity=entity_set, key=key) from None
        error = translate_error(response, system=self.system, entity=entity_set, key=key)
        if isinstance(error, TransientError) or response.status_code in (401, 403):
            raise error
        return f"!SAP refused the {what}: {sap_message(response)}"


def plain(value: Any) -> Any:
    """OData v2 JSON without its wrapping (see the module docstring)."""
    if isinstance(value, dict):
        if "__deferred" in value:
            return None
        if set(value) <= {"results", "__next", "__count"} and "results" in value:
            return [plain(item) for item in value["results"]]
        return {name: plain(item) for name, item in value.items()
                if name != "__metadata" and not (isinstance(item, dict) and "__deferred" in item)}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, str) and value.startswith("/Date("):
        match = _DATE.match(value)
        if match:
            moment = _EPOCH + dt.timedelta(milliseconds=int(match.group(1)))
            if match.group(2) is None and moment.time() == dt.time(0):
                return moment.date().isoformat()
            return _iso(moment)
    return value


def _iso(moment: dt.datetime) -> str:
    text = moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _literal(kind: str, moment: dt.datetime) -> str:
    if kind == "datetime":
        return f"datetime'{moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec='milliseconds')}'"
    return f"datetimeoffset'{_iso(moment)}'"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _after(spec: EntitySpec, position: ChangesCursor) -> str:
    """Rows after (watermark, key...) in watermark-then-key order, as a $filter."""
    assert spec.watermark is not None
    moment = _literal(spec.watermark_type, clock.parse_instant(position.watermark))
    keys = list(zip(spec.key, position.after, strict=False))
    tie = ""
    for name, value in reversed(keys):
        later = f"{name} gt {_quote(value)}"
        tie = f"{later} or ({name} eq {_quote(value)} and ({tie}))" if tie else later
    newer = f"{spec.watermark} gt {moment}"
    return f"{newer} or ({spec.watermark} eq {moment} and ({tie}))" if tie else newer


def _decode_cursor(since: str | None) -> ChangesCursor | None:
    """A cursor this connector wrote, or a plain ISO timestamp given by a person to start from."""
    if not since:
        return None
    if since.lstrip().startswith("{"):
        try:
            return msgspec.json.decode(since, type=ChangesCursor)
        except msgspec.DecodeError:
            pass
    try:
        clock.parse_instant(since)
    except ValueError:
        raise PermanentError(f"unreadable net-change cursor {since!r}") from None
    return ChangesCursor(since)
