"""Change-log fan-out, chosen by URL: none (or ``embedded://``) reads the store's change log directly;
``nats://host:4222`` relays it through NATS JetStream (needs the ``nats`` extra).

URL options (query): ``partitions`` (default 1 embedded, 8 NATS), ``lease_seconds`` (default 15: how long a dead
worker's partitions or relay stay taken); NATS only: ``stream`` (default ``SYNCFABRIC``), ``ack_wait`` (seconds,
default 30), ``duplicate_window`` (seconds, default 600).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from syncfabric.bus.base import Batch, Bus, BusStatus, ConsumerStatus, Message, Subscription, message_id, partition_of
from syncfabric.errors import ConfigError
from syncfabric.store import Store

COMMON = {"partitions": int, "lease_seconds": float}
NATS_ONLY = {"stream": str, "ack_wait": float, "duplicate_window": float}


def parse_bus_url(url: str | None) -> tuple[str, str, dict[str, object]]:
    """(kind, server URL without options, options) of a bus URL; ConfigError naming what is wrong."""
    if not url or url == "embedded":
        return "embedded", "", {}
    parts = urlsplit(url)
    kinds = {"embedded": COMMON, "nats": {**COMMON, **NATS_ONLY}}
    if parts.scheme not in kinds:
        raise ConfigError([f"bus URL {url!r}: unsupported scheme {parts.scheme!r}; use nats://HOST:PORT or leave "
                           "bus out for the embedded bus"])
    known = kinds[parts.scheme]
    options: dict[str, object] = {}
    problems = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in known:
            problems.append(f"bus URL: unknown option {name!r}; known: {', '.join(sorted(known))}")
            continue
        try:
            options[name] = known[name](value)
        except ValueError:
            problems.append(f"bus URL: option {name!r} must be a {known[name].__name__}, got {value!r}")
    if "partitions" in options and not 1 <= int(options["partitions"]) <= 1024:  # type: ignore[call-overload]
        problems.append("bus URL: partitions must be between 1 and 1024")
    if problems:
        raise ConfigError(problems)
    return parts.scheme, parts._replace(query="").geturl(), options


def open_bus(url: str | None, store: Store) -> Bus:
    """The bus a URL names, over ``store`` (whose change log it fans out; the caller keeps owning the store)."""
    kind, server, options = parse_bus_url(url)
    if kind == "embedded":
        from syncfabric.bus.embedded import EmbeddedBus

        return EmbeddedBus(store, **options)  # type: ignore[arg-type]
    from syncfabric.bus.nats import NatsBus

    return NatsBus(server, store, **options)  # type: ignore[arg-type]


__all__ = [
    "Batch", "Bus", "BusStatus", "ConsumerStatus", "Message", "Subscription", "message_id", "open_bus",
    "parse_bus_url", "partition_of",
]
