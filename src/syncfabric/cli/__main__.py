from __future__ import annotations

from syncfabric.cli import app

app()
