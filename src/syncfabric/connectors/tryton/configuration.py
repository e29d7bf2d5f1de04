"""Configuration of a Tryton ERP reached over JSON-RPC (``POST <url>/<database>/rpc/``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from syncfabric.connectors.limits import Limits


class TrytonConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str
    """Root URL of the Tryton server (``http://erp.example.com:8000``); calls go to ``<url>/<database>/rpc/``."""
    database: str
    """The Tryton database to log in to."""
    user: str = "admin"
    """The Tryton login; its password is the ``password`` credential."""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Limit for connecting and for each call; a timeout is retried later."""
    page_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    """Records per ``search_read`` call, and per page committed to the store."""
    verify_tls: bool = True
    """Check the server's TLS certificate. Turn off only for test systems with self-signed certificates."""
    lookback_seconds: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    """Net-change reads start this long before the watermark. Tryton stamps a write with its transaction's time, so
    a long transaction can commit a change older than the newest one already read; re-reading a minute catches it
    (records that did not change write nothing)."""
    accept_warnings: bool = False
    """A Tryton warning (``UserWarning``) on a write: accept it as a user of the client would and retry, or
    (default) reject the record with the warning's text."""
    purchase_state: Literal["draft", "quotation"] = "draft"
    """The state a purchase created from a planned order is left in: ``quotation`` also runs the Quote button."""
    send_statuses: list[str] = msgspec.field(default_factory=lambda: ["approved"])
    """Planned orders with these statuses become Tryton documents; others are accepted and left alone: a proposed
    one is sent once a later version is approved, and a released one already names the ERP order it became."""
    units: dict[str, str] = msgspec.field(default_factory=dict)
    """Canonical unit code -> Tryton unit symbol (``EA: u``) for write-back; without an entry the codes must match
    (case-insensitively) the symbol of the product's unit."""
    reuse_session: bool = False
    """Keep the session for the next connection to the same server, database and user in this process instead of
    logging in for every run and out after it (a Tryton login verifies an argon2 hash: a large part of a short
    run). A session that expired is renewed as always."""
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    """Tries per call when the server refused it (429, 503: nothing was done) and, for calls that only read, on
    timeouts and other transient failures; waits as ``Retry-After`` says or with capped exponential backoff."""
    max_retry_delay_seconds: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    """Longest wait between two tries, whatever ``Retry-After`` asks."""
    limits: Limits | None = None
    """Request rate and concurrency limits for this Tryton, shared by every flow of the system in the process
    (``{requests_per_second: 10, max_concurrent: 2}``)."""
