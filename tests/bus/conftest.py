from __future__ import annotations

from tests.bus.conformance import store

__all__ = ["store"]
