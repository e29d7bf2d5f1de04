"""Run an ASGI app on a real loopback port in a background thread.

Every simulated system is served this way, in tests and in the demo, so that connectors speak real HTTP over real
sockets: timeouts, refused connections and keep-alive behave as they do against production systems.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serve(app: Any, host: str = "127.0.0.1", port: int = 0, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` until the block exits and yield its base URL (``http://127.0.0.1:54321``).

    ``port=0`` lets the operating system pick a free port; the port actually bound is read back from the server's
    listening socket. The server is stopped, and its thread joined, when the block exits, even on error.
    """
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # uvicorn reports a failed bind with SystemExit
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"sandbox-server-{host}:{port}", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread, failure, startup_timeout)
        bound_port = server.servers[0].sockets[0].getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        yield f"http://{shown_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)


def _wait_started(
    server: uvicorn.Server, thread: threading.Thread, failure: list[BaseException], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if failure or not thread.is_alive():
            cause = failure[0] if failure else None
            raise RuntimeError(f"sandbox server did not start: {cause!r}") from cause
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"sandbox server did not start within {timeout} s")
        time.sleep(0.01)
