"""What the event benchmarks share: local HTTP services on 127.0.0.1 (a free port, a uvicorn process that answers
before it is used, the body of an ASGI request), the machine they ran on, and writing their results."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_uvicorn(factory: str, ready: str, *, what: str,
                  app_dir: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``uvicorn --factory FACTORY`` on a free port, once ``GET ready`` (a path) answers; the process and its URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen([*command, "--app-dir", str(app_dir)] if app_dir else command)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}{ready}", timeout=1).raise_for_status()
            return process, url
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} did not start")


async def request_body(receive: Any) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def machine() -> str:
    return f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, {platform.system()}"


def save(console: Console, results: dict[str, Any], out: Path) -> None:
    """Show the ratios, and write every result to ``out`` as JSON."""
    console.print(results["ratio"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {out}")
