"""Reads a Tryton ERP over JSON-RPC in pages, and writes planned orders back as purchases and productions.

Reads (:mod:`.streams`) go through ``search_read`` ordered by id, ``page_size`` records at a time, resuming after
the last id of the last committed page. The cursor is JSON:

    {"since": "2026-12-01T21:16:19.671967Z"}                 a watermark: the next net-change read starts there
    {"since": ..., "after": 120, "max": ..., "ceiling": ...}   mid-read: resume after id 120, keep the largest
                                                              stamp read and the newest stamp when the read began
    {"done": true, "since": ...}                              a full read ended: the next one starts from the top

``read_full`` and ``read_changes`` both resume from a mid-read cursor, so a page committed is never read again.

A net-change read asks for the records whose polled timestamps (``last_modified_at`` of the record and of the parts
Tryton keeps apart: a variant's template, a purchase's lines) are at or after the watermark minus
``lookback_seconds``; the new watermark is the largest timestamp read back (the server's clock, never ours), but
no later than the newest stamp when the read began: a record changed while a long read pages through ids, behind
its position, is read again by the next run.
Deletions leave no trace in Tryton: a full read (``mode: full``) finds them. Inventory is read in full only.

Writes (:mod:`.orders`) turn approved planned orders into draft (or quoted) purchases and draft productions.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

from syncfabric.connectors.base import Capability, OutboundRecord, Page, RawRecord, WriteOutcome
from syncfabric.connectors.http import ClientConnector
from syncfabric.connectors.tryton import streams
from syncfabric.connectors.tryton.client import TrytonClient
from syncfabric.connectors.tryton.configuration import TrytonConfig
from syncfabric.errors import PermanentError
from syncfabric.observe import clock


class TrytonConnector(ClientConnector[TrytonClient]):
    kind = "tryton"
    capabilities = Capability.READ_FULL | Capability.READ_CHANGES | Capability.WRITE
    config_type = TrytonConfig
    config: TrytonConfig
    secret_names = ("password",)
    links_external_ids = True

    @classmethod
    def source_problems(cls, config: TrytonConfig, source: str, mode: str) -> list[str]:
        if source == streams.INVENTORY:
            return [] if mode == "full" else ["inventory_balance is read in full only: use mode: full"]
        if source not in streams.STREAMS:
            known = ", ".join([*streams.STREAMS, streams.INVENTORY])
            return [f"no Tryton source {source!r} (sources: {known})"]
        return []

    def make_client(self) -> TrytonClient:
        password = self.secrets.get("password")
        if not password:
            raise PermanentError("Tryton needs the password credential (credentials: {password: {env: ...}})",
                                 system=self.system)
        return TrytonClient(self.config, password, system=self.system)

    def test_connection(self) -> None:
        self.client.server_version()
        self.client.login()

    # ---- reading -----------------------------------------------------------------------------------------------

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        """Every record of a source: from the top, or after the page a mid-read ``cursor`` ends."""
        state = _decode_cursor(cursor)
        if state.get("done") or "after" not in state:
            state = {}
        if entity == streams.INVENTORY:
            yield from self._read_inventory(int(state.get("location") or 0), int(state.get("after") or 0))
            return
        yield from self._read(self._stream(entity), since=None, after=int(state.get("after") or 0),
                              largest=state.get("max"), ceiling=state.get("ceiling"), complete=True)

    def read_changes(self, entity: str, since: str | None) -> Iterator[Page]:
        if entity == streams.INVENTORY:
            raise PermanentError("inventory_balance is read in full only (mode: full): Tryton computes stock from "
                                 "moves and keeps no change stamp per balance", system=self.system, entity=entity)
        stream = self._stream(entity)
        state = _decode_cursor(since)
        yield from self._read(stream, since=state.get("since"), after=int(state.get("after") or 0),
                              largest=state.get("max"), ceiling=state.get("ceiling"), complete=False)

    def _stream(self, entity: str) -> streams.Stream:
        try:
            return streams.STREAMS[entity]
        except KeyError:
            known = ", ".join([*streams.STREAMS, streams.INVENTORY])
            raise PermanentError(f"no Tryton source {entity!r} (sources: {known})", system=self.system,
                                 entity=entity) from None

    def _read(self, stream: streams.Stream, *, since: str | None, after: int, largest: str | None,
              ceiling: str | None, complete: bool) -> Iterator[Page]:
        if after == 0:
            ceiling = self._newest_stamp(stream)
        base: list[Any] = [list(clause) for clause in stream.domain]
        if since:
            start = clock.parse_instant(since) - dt.timedelta(seconds=self.config.lookback_seconds)
            base.append(["OR", *[[stamp, ">=", start] for stamp in stream.stamps]])
        size = self.config.page_size
        while True:
            rows = self.client.execute(stream.model, "search_read", [*base, ["id", ">", after]], 0, size,
                                       [["id", "ASC"]], list(stream.fields), context=stream.context,
                                       entity=stream.name)
            records = []
            for row in rows:
                data = stream.shape(streams.flatten(row))
                found = streams.stamps_of(data, stream.stamps)
                if found:
                    largest = max([largest, *found] if largest else found)
                records.append(RawRecord(data, location=f"{stream.model}:{row['id']}"))
            if rows:
                after = int(rows[-1]["id"])
            done = len(rows) < size
            watermark = min(largest, ceiling) if largest and ceiling else largest or since
            if since and watermark and clock.parse_instant(watermark) < clock.parse_instant(since):
                watermark = since  # re-reading the lookback window never moves the watermark back
            if done and complete:
                cursor = json.dumps({"done": True, "since": watermark})
            elif done:
                cursor = json.dumps({"since": watermark}) if watermark else None
            else:
                cursor = json.dumps({"since": since, "after": after, "max": largest, "ceiling": ceiling})
            yield Page(records, cursor=cursor, complete=complete and done)
            if done:
                return

    def _newest_stamp(self, stream: streams.Stream) -> str | None:
        newest: list[str] = []
        for model in stream.stamped_models:
            rows = self.client.execute(model, "search_read", [], 0, 1, [["last_modified_at", "DESC"]],
                                       ["last_modified_at"], context={"active_test": False}, entity=stream.name)
            newest += [row["last_modified_at"] for row in rows if row.get("last_modified_at")]
        return max(newest) if newest else None

    def _read_inventory(self, start_location: int = 0, start_after: int = 0) -> Iterator[Page]:
        """On-hand and forecast quantity of each goods product (archived ones too) with stock at each storage
        location (that location alone, not its children).

        ``as_of`` is the newest change of any stock move (the server's clock): stock is what the moves say, so it
        is exact as of then, and a balance is rewritten only when stock moved, not on every read. ``read_at`` is
        the time of the read on the observability clock (a mapping that takes it as ``as_of`` rewrites every
        balance on every read: the read time is its source time, as the OData connector's ``stamp_field``)."""
        newest = self.client.execute("stock.move", "search_read", [], 0, 1, [["last_modified_at", "DESC"]],
                                     ["last_modified_at"], entity=streams.INVENTORY)
        as_of = newest[0]["last_modified_at"] if newest else dt.datetime.now(dt.UTC).isoformat().replace("+00:00",
                                                                                                        "Z")
        read_at = clock.now().isoformat().replace("+00:00", "Z")
        today = dt.datetime.now(dt.UTC).date()
        storage = [["type", "=", "storage"], ["code", "!=", None], ["id", ">=", start_location]]
        locations = self.client.execute("stock.location", "search_read", storage, 0, None, [["id", "ASC"]],
                                        list(streams.STORAGE_FIELDS), entity=streams.INVENTORY)
        size = self.config.page_size
        pending: list[RawRecord] = []
        for index, location in enumerate(locations):
            place = streams.flatten(location)
            context = {"locations": [location["id"]], "stock_date_end": today, "with_childs": False,
                       "active_test": False}
            after = start_after if location["id"] == start_location else 0
            while True:
                rows = self.client.execute(
                    "product.product", "search_read", [["type", "=", "goods"], ["id", ">", after]], 0, size,
                    [["id", "ASC"]], list(streams.INVENTORY_FIELDS), context=context, entity=streams.INVENTORY)
                for row in rows:
                    product = streams.flatten(row)
                    if not product.get("quantity") and not product.get("forecast_quantity"):
                        continue
                    data = {"product": {"id": product["id"], "code": product.get("code")}, "location": place,
                            "quantity": product.get("quantity"), "forecast_quantity": product.get("forecast_quantity"),
                            "unit": product.get("default_uom"), "as_of": as_of,
                            "read_at": read_at}
                    pending.append(RawRecord(data, location=f"stock.location:{location['id']}/product:{row['id']}"))
                if rows:
                    after = int(rows[-1]["id"])
                if len(rows) < size:
                    break
                if len(pending) >= size:
                    yield Page(pending, cursor=json.dumps({"location": location["id"], "after": after}))
                    pending = []
            if index == len(locations) - 1:
                yield Page(pending, cursor=json.dumps({"done": True}), complete=True)
            elif len(pending) >= size:
                yield Page(pending, cursor=json.dumps({"location": locations[index + 1]["id"], "after": 0}))
                pending = []
        if not locations:
            yield Page([], cursor=json.dumps({"done": True}), complete=True)

    # ---- writing -----------------------------------------------------------------------------------------------

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        if entity != "planned_order":
            raise PermanentError(f"Tryton takes planned orders only, not {entity!r}", system=self.system,
                                 entity=entity)
        from syncfabric.connectors.tryton.orders import OrderWriter

        return OrderWriter(self.client, self.config, self.system).write(records)


def _decode_cursor(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"since": text}  # a bare watermark, e.g. set by hand to start from a date
    return value if isinstance(value, dict) else {}
