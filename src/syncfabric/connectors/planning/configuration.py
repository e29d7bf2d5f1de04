"""Configuration of a planning platform that speaks frePPLe's REST planning input."""

from __future__ import annotations

from typing import Annotated

import msgspec


class PlanningConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    base_url: str
    """Root URL of the platform (``https://plan.example.com``); the REST API is under ``<base_url>/api/``."""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Limit for connecting and for each read or write on the connection; a timeout is retried later."""
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    """Records per bulk write request, and per page when reading an order's line records."""
    read_page_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 5000
    """Records per page when reading back what the platform holds (reconciliation, full reads)."""
    verify_tls: bool = True
    """Check the platform's TLS certificate. Turn off only for test systems with self-signed certificates."""
    source: str = "syncfabric"
    """Written into every record's ``source`` field, which frePPLe uses to tell which integration owns a record."""
