"""Configuration of an MQTT broker that plant systems publish events to."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class MqttConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    """The broker's host name or address."""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883
    """The broker's TCP port."""
    client_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] = "syncfabric"
    """Prefix of the client ids; each subscribing flow connects as ``<client_id>-<flow>``. The broker keeps that
    client's session (its subscriptions and the messages published while it was away), so keep it stable."""
    keepalive_seconds: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    """Seconds between checks of an idle connection; a broker silent for 1.5 times that counts as lost."""
    connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    """Limit for connecting and subscribing."""
    reconnect_max_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Longest wait between attempts to reconnect after the connection was lost (doubling from 0.5 s)."""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    """MQTT version of every session. Shared subscriptions (``listen --workers``) work with 3.1.1 on mosquitto,
    EMQX, HiveMQ and VerneMQ; choose 5 for a broker that shares messages only among MQTT v5 clients. Version 5 costs
    about four times the client's CPU per message (paho-mqtt decodes each message's v5 properties in Python)."""
