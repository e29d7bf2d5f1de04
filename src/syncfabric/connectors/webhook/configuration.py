"""Configuration of a webhook endpoint that logistics platforms and supplier portals deliver events to."""

from __future__ import annotations

from typing import Annotated

import msgspec


class WebhookConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    """The address the endpoint listens on; put a TLS-terminating proxy in front of it for the internet."""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8800
    """The TCP port the endpoint listens on."""
    path_prefix: Annotated[str, msgspec.Meta(pattern=r"^(/[A-Za-z0-9._~-]+)*$")] = "/events"
    """Deliveries for a flow are POSTed to ``<path_prefix>/<source>`` (the flow's source; its entity by default)."""
    signature_header: str = "X-Syncfabric-Signature"
    """The header with the HMAC-SHA256 of ``<timestamp>.<raw body>`` under the shared secret, as hex, optionally
    prefixed ``sha256=``. The secret is the system's ``secret`` credential (an environment variable)."""
    timestamp_header: str = "X-Syncfabric-Timestamp"
    """The header with the delivery's time in Unix seconds; it is part of what is signed."""
    tolerance_seconds: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 300.0
    """A delivery whose timestamp is further than this from now is refused as stale; a signature seen within
    this window is refused as reused."""
    answer_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """How long a delivery waits for the store to commit it before it is answered 503 (send again)."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1)] = 1_000_000
    """Larger deliveries are refused with 413."""
