"""Which connector class serves which system kind. Registration is explicit: add a line here.

Classes are imported lazily so that ``import syncfabric`` never pulls in every driver.
"""

from __future__ import annotations

import importlib
from typing import Any

from syncfabric.connectors.base import Connector

KINDS: dict[str, str] = {
    "files": "syncfabric.connectors.files.connector:FilesConnector",
    "planning": "syncfabric.connectors.planning.connector:PlanningConnector",
    "odata": "syncfabric.connectors.odata.connector:ODataConnector",
    "sql": "syncfabric.connectors.sql.connector:SqlConnector",
    "rest": "syncfabric.connectors.rest.connector:RestConnector",
    "mqtt": "syncfabric.connectors.mqtt.connector:MqttConnector",
    "webhook": "syncfabric.connectors.webhook.connector:WebhookConnector",
    "tryton": "syncfabric.connectors.tryton.connector:TrytonConnector",
}


def connector_class(kind: str) -> type[Connector]:
    """The connector class for a kind; KeyError naming the known kinds otherwise."""
    try:
        target = KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown system kind {kind!r}; known: {', '.join(sorted(KINDS))}") from None
    module_name, _, attr = target.partition(":")
    cls: type[Connector] = getattr(importlib.import_module(module_name), attr)
    return cls


def config_type(kind: str) -> type[Any]:
    return connector_class(kind).config_type
