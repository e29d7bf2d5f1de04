"""Reads paged JSON HTTP APIs: offset/limit, cursor-token and ``Link: rel="next"`` paging, in full or by watermark.

The cursor of a page holds what asks for the next one (the offset, the token or the next URL), so a read resumes
after its last committed page. The last page of a full read is ``complete`` and its cursor means "done": the next
full read starts from the first page. A net-change read sends ``watermark_param`` = the highest watermark of the
records already read (taken from the data), less ``overlap``; a cursor inside the read keeps the value it sent, so
a resumed read continues that same read.

Each request is retried on timeouts, 429 and 5xx by :func:`syncfabric.flows.retry.call_with_retry`, waiting as
``Retry-After`` says (capped) or with capped exponential backoff.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import msgspec

from syncfabric.connectors import watermark as wm
from syncfabric.connectors.base import (
    Capability,
    OutboundRecord,
    Page,
    RawRecord,
    RejectedRaw,
    WriteOutcome,
)
from syncfabric.connectors.http import ClientConnector, http_client
from syncfabric.connectors.rest.configuration import RestConfig, RestEndpoint
from syncfabric.connectors.rest.exceptions import bad_answer, translate_error
from syncfabric.errors import PermanentError, TransientError
from syncfabric.flows.retry import RetryPolicy, call_with_retry


class RestCursor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    next: str | None = None
    """What asks for the next page: an offset, a token, or a URL."""
    done: bool = False
    """A full read reached its last page."""
    since: str | int | float | None = None
    """Inside a net-change read: the watermark it sent."""
    high: str | int | float | None = None
    """The highest watermark read so far."""


class RestConnector(ClientConnector[httpx.Client]):
    kind = "rest"
    capabilities = Capability.READ_FULL | Capability.READ_CHANGES | Capability.WRITE
    config_type = RestConfig
    config: RestConfig
    secret_names = ("token", "password")

    def make_client(self) -> httpx.Client:
        auth: httpx.Auth | None = None
        headers = {}
        if self.config.username is not None:
            if "password" not in self.secrets:
                raise PermanentError("username is set but credentials has no password", system=self.system)
            auth = httpx.BasicAuth(self.config.username, self.secrets["password"])
        elif token := self.secrets.get("token"):
            headers["Authorization"] = f"Bearer {token}"
        return http_client(self.system, self.config.base_url, timeout=self.config.timeout_seconds,
                           verify=self.config.verify_tls, headers=headers, auth=auth)

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.config.max_attempts, max_delay=self.config.max_retry_delay_seconds)

    @classmethod
    def source_problems(cls, config: RestConfig, source: str, mode: str) -> list[str]:
        endpoint = config.endpoints.get(source)
        if endpoint is None and not source.startswith("/"):
            known = ", ".join(config.endpoints) or "none"
            return [f"source {source!r} is neither an endpoint of the system (endpoints: {known}) nor a path "
                    "starting with /"]
        if mode == "changes" and (endpoint is None or endpoint.watermark is None):
            return [f"source {source!r} has no watermark, which mode changes needs: give its endpoint watermark "
                    "and watermark_param, or use mode: full"]
        return []

    def endpoint(self, name: str) -> RestEndpoint:
        return self.config.endpoints.get(name) or RestEndpoint(path=name)

    def test_connection(self) -> None:
        for name, endpoint in self.config.endpoints.items():
            self._get(name, endpoint.path, {**endpoint.params, endpoint.limit_param: "1"})
            return

    # ---- reading -----------------------------------------------------------------------------------------------

    def read_full(self, entity: str, cursor: str | None = None) -> Iterator[Page]:
        saved = msgspec.json.decode(cursor, type=RestCursor) if cursor else RestCursor()
        start = None if saved.done else saved.next
        for records, problems, following in self._pages(entity, {}, start):
            if following is None:
                yield Page(records, _encode(RestCursor(done=True)), complete=True, problems=problems)
                return
            yield Page(records, _encode(RestCursor(next=following)), problems=problems)

    def read_changes(self, entity: str, since: str | None) -> Iterator[Page]:
        endpoint = self.endpoint(entity)
        if endpoint.watermark is None or endpoint.watermark_param is None:
            raise PermanentError(f"endpoint {entity!r} has no watermark: give watermark and watermark_param to read "
                                 "changes, or read it in full", system=self.system, entity=entity)
        saved = msgspec.json.decode(since, type=RestCursor) if since else RestCursor()
        high = saved.high
        lower = saved.since if saved.next is not None else wm.step_back(high, endpoint.overlap)
        params = {endpoint.watermark_param: str(lower)} if lower is not None else {}
        for records, problems, following in self._pages(entity, params, saved.next):
            for record in records:
                value = _at(record.data, endpoint.watermark)
                if isinstance(value, str | int | float) and not isinstance(value, bool):
                    high = wm.later(high, value)
            if following is None:
                yield Page(records, _encode(RestCursor(high=high)), problems=problems)
                return
            yield Page(records, _encode(RestCursor(next=following, since=lower, high=high)), problems=problems)

    def _pages(
        self, entity: str, extra: dict[str, str], start: str | None
    ) -> Iterator[tuple[list[RawRecord], list[RejectedRaw], str | None]]:
        """(records, rejects, what asks for the next page or None on the last) for each page from ``start``."""
        endpoint = self.endpoint(entity)
        size = self.config.page_size
        base = {**endpoint.params, **extra}
        if endpoint.paging != "none":
            base[endpoint.limit_param] = str(size)
        position = start
        while True:
            if endpoint.paging == "link" and position is not None:
                response = self._get(entity, position, None)
            elif endpoint.paging == "offset":
                response = self._get(entity, endpoint.path, {**base, endpoint.offset_param: position or "0"})
            elif endpoint.paging == "cursor" and position is not None:
                response = self._get(entity, endpoint.path, {**base, endpoint.cursor_param: position})
            else:
                response = self._get(entity, endpoint.path, base)
            body = _json(response, self.system, entity)
            rows = _at(body, endpoint.records)
            if not isinstance(rows, list):
                raise bad_answer(f"expected a list of records at {_path(endpoint.records)}, got "
                                 f"{type(rows).__name__}", response, system=self.system, entity=entity)
            records, problems = self._records(entity, endpoint, rows, response)
            if endpoint.paging == "offset":
                # Only an empty page ends: an API may serve fewer records than asked for without saying so.
                following = str(int(position or 0) + len(rows)) if rows else None
            elif endpoint.paging == "cursor":
                token = _at(body, endpoint.next_cursor)
                following = str(token) if token not in (None, "") else None
            elif endpoint.paging == "link":
                following = response.links.get("next", {}).get("url")
            else:
                following = None
            yield records, problems, following
            if following is None:
                return
            position = following

    def _records(
        self, entity: str, endpoint: RestEndpoint, rows: list[Any], response: httpx.Response
    ) -> tuple[list[RawRecord], list[RejectedRaw]]:
        records: list[RawRecord] = []
        problems: list[RejectedRaw] = []
        for index, row in enumerate(rows):
            where = f"{_path(endpoint.records)}[{index}]"
            if not isinstance(row, dict):
                problems.append(RejectedRaw(raw=msgspec.json.encode(row).decode(), location=f"{entity}: {where}",
                                            reason=f"expected a JSON object, got {type(row).__name__} @ {where} "
                                                   f"(GET {response.request.url})"))
                continue
            key = [_at(row, name) for name in endpoint.key]
            shown = "|".join(str(part) for part in key) if all(part is not None for part in key) else where
            records.append(RawRecord(row, location=f"{entity}:{shown}"))
        return records, problems

    # ---- writing -----------------------------------------------------------------------------------------------

    def write(self, entity: str, records: Sequence[OutboundRecord]) -> WriteOutcome:
        """``PUT <path>/<id>`` each record (``DELETE`` a deletion), one request each, retried on timeouts, 429 and
        5xx. A record the API refuses (another 4xx) is rejected with the API's reason; 401 and 403 refuse the whole
        batch (credentials are not one record's fault), as does a request that still fails after its retries."""
        from urllib.parse import quote

        target = self.config.targets.get(entity)
        if target is None:
            raise PermanentError(f"no target for entity {entity!r}: give it under the connection's targets "
                                 f"({{{entity}: {{path: ..., key: id}}}})", system=self.system, entity=entity)
        outcome = WriteOutcome()
        for record in records:
            values = record.payload if record.payload is not None else record.target_key
            ident = _at(values, target.key) if values is not None else record.key
            if ident is None or ident == "":
                outcome.rejected[record.key] = f"no value for key field {target.key!r} of {target.path}"
                continue
            url = f"{target.path.rstrip('/')}/{quote(str(ident), safe='')}"
            response = self._send(entity, "DELETE" if record.payload is None else "PUT", url, record.payload)
            if response.is_success or (record.payload is None and response.status_code == 404):
                outcome.accepted.append(record.key)
            elif response.status_code in (401, 403):
                raise translate_error(response, system=self.system, entity=entity)
            else:
                outcome.rejected[record.key] = str(translate_error(response, system=self.system, entity=entity))
        return outcome

    def _send(self, entity: str, method: str, url: str, body: dict[str, Any] | None) -> httpx.Response:
        """The answer to one write; timeouts, 429 and 5xx are retried and then raised, other answers returned."""

        def once() -> httpx.Response:
            try:
                response = self.client.request(method, url, json=body)
            except httpx.HTTPError as exc:
                raise translate_error(exc, system=self.system, entity=entity) from exc
            error = None if response.status_code < 400 else translate_error(response, system=self.system,
                                                                               entity=entity)
            if isinstance(error, TransientError):
                raise error
            return response

        return call_with_retry(once, self.retry)

    def _get(self, entity: str, path: str, params: dict[str, str] | None) -> httpx.Response:
        def once() -> httpx.Response:
            try:
                response = self.client.get(path, params=params)
            except httpx.HTTPError as exc:
                raise translate_error(exc, system=self.system, entity=entity) from exc
            if response.status_code != 200:
                raise translate_error(response, system=self.system, entity=entity)
            return response

        return call_with_retry(once, self.retry)


def _encode(cursor: RestCursor) -> str:
    return msgspec.json.encode(cursor).decode()


def _json(response: httpx.Response, system: str, entity: str) -> Any:
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        raise bad_answer(f"answer is not JSON ({exc})", response, system=system, entity=entity) from None


_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _at(body: Any, path: str) -> Any:
    """The value at a simple JSON path (``$``, ``$.data.records``, ``items``, ``pages[0].rows``); None if absent."""
    current = body
    for match in _STEP.finditer(path.strip().removeprefix("$")):
        name, index = match.groups()
        if name is not None:
            current = current.get(name) if isinstance(current, dict) else None
        else:
            current = current[int(index)] if isinstance(current, list) and int(index) < len(current) else None
    return current


def _path(path: str) -> str:
    path = path.strip()
    return path if path.startswith("$") else f"$.{path}"
