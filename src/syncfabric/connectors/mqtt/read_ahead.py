"""Reads an MQTT connection in large chunks, and every packet they hold per wake-up of the client's loop.

paho-mqtt reads its socket a few bytes at a time (a packet's first byte, its length byte by byte, then its body:
about four ``recv`` calls per message) and, under aiomqtt, one packet per wake-up of the event loop, so a backlog
of small messages costs several system calls and a pass of the loop each. :func:`read_ahead` makes paho's reads
come from a buffer filled 64 KiB at a time, and each read event go on until that buffer is used up: the packets
that arrived together are handled together. It relies on two methods of paho's client (``_sock_recv``,
``loop_read``), checked when installed; without them (another paho version) it changes nothing.
"""

from __future__ import annotations

from typing import Any

CHUNK = 65536


class _ReadAhead:
    __slots__ = ("_data", "_loop_read", "_paho", "_pos", "_recv")

    def __init__(self, paho: Any) -> None:
        self._paho = paho
        self._recv = paho._sock_recv
        self._loop_read = paho.loop_read
        self._data = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes, from the buffer; an empty buffer is filled first (BlockingIOError when nothing
        waits on the socket, as paho expects; ``b""`` when the connection closed)."""
        if self._pos >= len(self._data):
            self._data = self._recv(max(size, CHUNK))
            self._pos = 0
            if not self._data:
                return b""
        chunk = self._data[self._pos:self._pos + size]
        self._pos += len(chunk)
        return chunk

    def loop_read(self, max_packets: int = 1) -> Any:
        rc = self._loop_read(max_packets)
        while rc == 0 and self._pos < len(self._data) and self._paho._sock is not None:
            rc = self._loop_read(max_packets)
        return rc


def read_ahead(paho: Any) -> bool:
    """Install the read-ahead on a paho client before it connects; False when this paho lacks the hooks."""
    if not (callable(getattr(paho, "_sock_recv", None)) and callable(getattr(paho, "loop_read", None))):
        return False
    reader = _ReadAhead(paho)
    paho._sock_recv = reader.recv
    paho.loop_read = reader.loop_read
    return True
