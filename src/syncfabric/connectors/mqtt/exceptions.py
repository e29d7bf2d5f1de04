"""Every failure talking to the MQTT broker becomes a TransientError or a PermanentError here, and only here.

    refused: not authorized, bad user name or password   ─► PermanentError  (credentials or configuration wrong)
    refused: bad client id, unsupported protocol
    every other aiomqtt.MqttError (connection refused,    ─► TransientError  (the broker is down or restarting:
    lost, timed out), OSError                                                  reconnect, messages wait for us)
"""

from __future__ import annotations

from syncfabric.errors import ConnectorError, PermanentError, TransientError

_FINAL_REASONS = ("not authori", "bad user name", "bad username", "identifier rejected", "client identifier",
                  "unsupported protocol", "unacceptable protocol", "banned")


def translate_error(error: BaseException, *, system: str, entity: str = "", where: str = "") -> ConnectorError:
    text = str(error) or type(error).__name__
    message = f"MQTT broker {where}: {text}" if where else f"MQTT broker: {text}"
    if any(reason in text.lower() for reason in _FINAL_REASONS):
        return PermanentError(message, system=system, entity=entity)
    return TransientError(message, system=system, entity=entity)


def describe_payload_error(error: ValueError) -> str:
    return f"message body is not JSON: {error}"
