"""HMAC-SHA256 signatures over ``<timestamp>.<raw body>``, with a replay window.

Signing the timestamp together with the body is what makes the replay window hold: an old delivery cannot be
made fresh by changing its timestamp header. Signatures seen within the window are remembered (in memory; a
replay right after a restart would only re-deliver an event the store already holds, which changes nothing).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import threading
import time
from collections.abc import Callable, Mapping

from syncfabric.connectors.webhook.exceptions import DeliveryRefused


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The signature header value a sender puts on a delivery: ``sha256=<hex>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class Verifier:
    """Checks a delivery's signature and timestamp; refuses stale and reused ones."""

    def __init__(self, secret: str, *, signature_header: str, timestamp_header: str, tolerance: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.signature_header = signature_header
        self.timestamp_header = timestamp_header
        self.tolerance = tolerance
        self.clock = clock
        self._seen: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []
        """(until, signature) of what ``_seen`` holds, a heap: what left the window is dropped from its top,
        without walking every signature on every delivery."""
        self._lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """The delivery's signature if it is authentic, fresh and new; :class:`DeliveryRefused` otherwise."""
        given = headers.get(self.signature_header)
        stamp = headers.get(self.timestamp_header)
        if not given:
            raise DeliveryRefused(401, f"missing signature header {self.signature_header}")
        if not stamp:
            raise DeliveryRefused(401, f"missing timestamp header {self.timestamp_header}")
        try:
            sent_at = float(stamp)
        except ValueError:
            raise DeliveryRefused(401, f"timestamp header {self.timestamp_header} is not Unix seconds: "
                                       f"{stamp[:40]!r}") from None
        expected = sign(self.secret, stamp, body)
        if not hmac.compare_digest(given.strip().removeprefix("sha256=").lower(), expected.removeprefix("sha256=")):
            raise DeliveryRefused(401, "signature does not match the body and timestamp")
        now = self.clock()
        if abs(now - sent_at) > self.tolerance:
            raise DeliveryRefused(401, f"stale delivery: timestamp is {now - sent_at:+.0f} s from now, "
                                       f"outside the {self.tolerance:.0f} s window")
        with self._lock:
            seen, expiry = self._seen, self._expiry
            while expiry and expiry[0][0] < now:
                until, old = heapq.heappop(expiry)
                if seen.get(old) == until:  # not forgotten and seen again since
                    del seen[old]
            if expected in seen:
                raise DeliveryRefused(409, "delivery already received (same signature within the replay window)")
            until = sent_at + self.tolerance
            seen[expected] = until
            heapq.heappush(expiry, (until, expected))
        return expected

    def forget(self, signature: str) -> None:
        """A delivery that could not be stored may be sent again as it was."""
        with self._lock:
            self._seen.pop(signature, None)
