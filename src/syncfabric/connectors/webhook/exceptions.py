"""Why a webhook delivery is refused before it is read, and the HTTP status each reason is answered with.

    missing or malformed signature / timestamp header   ─► 401  (logged, never processed)
    signature does not match the body and timestamp      ─► 401
    timestamp outside the replay window (stale)          ─► 401
    signature already seen within the window (replayed)  ─► 409
    body larger than max_body_bytes                      ─► 413  (refused while it is read)
    sender gone before the body was complete             ─► 400
    no flow listens on the path                          ─► 404

A refused delivery never reaches the store; the sender keeps it and may send it again (signed anew).
Missing configuration (no ``secret`` credential) is a PermanentError when the endpoint opens.
"""

from __future__ import annotations


class DeliveryRefused(Exception):
    """A delivery refused at the door, with the status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")
