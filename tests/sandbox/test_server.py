from __future__ import annotations

import socket

import httpx
import pytest
from fastapi import FastAPI

from syncfabric.sandbox.server import serve


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


def test_serves_on_a_free_loopback_port_and_stops_on_exit() -> None:
    with serve(_app()) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        assert int(base_url.rsplit(":", 1)[1]) > 0
        assert httpx.get(f"{base_url}/ping").json() == {"pong": "yes"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/ping", timeout=2)


def test_two_servers_run_side_by_side() -> None:
    with serve(_app()) as first, serve(_app()) as second:
        assert first != second
        assert httpx.get(f"{first}/ping").status_code == httpx.get(f"{second}/ping").status_code == 200


def test_a_port_in_use_is_reported() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="did not start"), serve(_app(), port=port):
            pass
