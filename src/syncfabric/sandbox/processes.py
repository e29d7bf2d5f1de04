"""What every local server the sandbox and the test session start needs: the end of its log, and a stop that
waits and then kills."""

from __future__ import annotations

import subprocess
from pathlib import Path


def log_tail(log: Path | None, lines: int = 30) -> str:
    """The last ``lines`` lines of a server's log ("" when there is none yet)."""
    if log is None:
        return ""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_process(process: subprocess.Popen | None, timeout: float = 15) -> None:
    """Terminate ``process`` if it still runs; kill it when it has not ended within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
