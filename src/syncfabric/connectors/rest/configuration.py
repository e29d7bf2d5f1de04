"""Configuration of a paged JSON HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class RestEndpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: str
    """Path of the listing under ``base_url`` (``/api/v1/items``)."""
    records: str = "$"
    """JSON path to the list of records in each answer: ``$`` for a bare list, ``$.data.records``, ``items``."""
    paging: Literal["offset", "cursor", "link", "none"] = "offset"
    """``offset``: ``limit``/``offset`` parameters, read until an empty page (an API may cap the page size
    silently); ``cursor``: the answer carries the
    token of the next page (``next_cursor``), none on the last; ``link``: the ``Link`` header's ``rel="next"``
    URL (RFC 8288); ``none``: one answer holds everything."""
    limit_param: str = "limit"
    """Query parameter for the page size (``limit``, ``page_size``, ``per_page``)."""
    offset_param: str = "offset"
    """offset paging: query parameter for the number of records to skip."""
    cursor_param: str = "cursor"
    """cursor paging: query parameter that takes the next page's token."""
    next_cursor: str = "next_cursor"
    """cursor paging: JSON path to the next page's token in the answer."""
    params: dict[str, str] = {}
    """Fixed query parameters sent with every request (``status: active``)."""
    key: list[str] = msgspec.field(default_factory=lambda: ["id"])
    """Fields (or dotted paths) of a record that identify it, shown in its location (``items:A-100``)."""
    watermark: str | None = None
    """Field (or dotted path) of a record that grows with every change (``updated_at``, ``meta.modified``):
    net-change reads ask for records at or after the highest one already read, less ``overlap``."""
    watermark_param: str | None = None
    """Query parameter that takes the watermark (``updated_since``, ``modified_after``)."""
    overlap: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """How far back a net-change read starts before the highest watermark already read (seconds for date-times,
    units for numbers), to catch late commits; records read twice change nothing."""

    def __post_init__(self) -> None:
        if (self.watermark is None) != (self.watermark_param is None):
            raise ValueError("net-change needs both watermark (the record field) and watermark_param (the query "
                             "parameter)")


class RestTarget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: str
    """Path under ``base_url`` of the collection written to: each record is ``PUT <path>/<id>`` as JSON (idempotent:
    the same record again changes nothing), a deletion is ``DELETE <path>/<id>``."""
    key: str = "id"
    """Field (or dotted path) of the target's record whose value is the ``<id>`` in the URL."""


class RestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    base_url: str
    """Root URL of the API (``https://portal.example.com``)."""
    endpoints: dict[str, RestEndpoint] = {}
    """Listings by name; a flow's ``source`` names one of them. A ``source`` not listed here is read as a path with
    the defaults (offset paging, a bare list)."""
    page_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    """Records asked for per request, and per commit to the store."""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Limit for connecting and for each read on the connection; a timeout is retried."""
    verify_tls: bool = True
    """Check the API's TLS certificate. Turn off only for test systems with self-signed certificates."""
    username: str | None = None
    """User name for HTTP basic authentication; its password comes from ``credentials: {password: {env: VAR}}``.
    Without it, a ``token`` credential is sent as ``Authorization: Bearer``."""
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    """Tries per request on timeouts, 429 and 5xx, waiting as ``Retry-After`` says or with capped exponential
    backoff."""
    max_retry_delay_seconds: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    """Longest wait between two tries, whatever ``Retry-After`` asks."""
    targets: dict[str, RestTarget] = {}
    """Outbound: per canonical entity, the collection its records are written to. Give the flow an outbound
    ``mapping:`` so that the records have the API's fields."""

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
