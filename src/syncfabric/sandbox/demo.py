"""``syncfabric demo``: the walking skeleton, end to end, against simulated systems on 127.0.0.1.

Night one, the legacy ERP exports everything and the planning platform receives it. The next morning three
balances move and a clerk's mistakes land in the export: exactly those three reach the planning platform and the
bad rows wait in quarantine with file, line and reason. A last run with nothing new sends nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from syncfabric.config import load_estate
from syncfabric.flows.runtime import Runtime
from syncfabric.sandbox.legacy_erp import LegacyErp
from syncfabric.sandbox.planning_platform import create_app
from syncfabric.sandbox.server import serve

ESTATE = "walking-skeleton"
TOKEN = "demo-token"
INBOUND = ("locations-in", "items-in", "item-locations-in", "inventory-in")


def example_estate(name: str = ESTATE) -> Path:
    """The example estate file: shipped inside the package, or in the source tree's ``examples/``."""
    for root in (Path(__file__).parents[1] / "examples", Path(__file__).parents[3] / "examples"):
        candidate = root / name / "estate.yaml"
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"example estate {name!r} not found")


@contextmanager
def _workdir(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="syncfabric-demo-") as temp:
        yield Path(temp)


def run_demo(console: Console, *, seed: int = 7, items: int = 200, folder: Path | None = None) -> None:
    from syncfabric.cli.status import status_table
    from syncfabric.cli.sync import results_table, run_with_progress

    with _workdir(folder) as work, serve(create_app(token=TOKEN)) as planning_url:
        estate_file = work / "estate.yaml"
        shutil.copy(example_estate(), estate_file)
        erp = LegacyErp(work / "drop" / "erp-legacy", seed=seed, item_count=items)
        environ = {"PLANNING_TOKEN": TOKEN, "SYNCFABRIC__SYSTEMS__PLANNING__CONNECTION__BASE_URL": planning_url}
        console.print(Panel.fit(
            f"estate  {estate_file}\nstore   {work / '.syncfabric' / 'syncfabric.db'} (embedded SQLite)\n"
            f"legacy ERP drop folder  {erp.folder}\nplanning platform       {planning_url}",
            title="syncfabric demo: legacy ERP → canonical store → planning platform"))

        with Runtime(load_estate(estate_file, environ=environ)) as runtime:
            def sync_all(title: str) -> list:
                console.rule(title)
                results = [run_with_progress(runtime, name) for name in (*INBOUND, "planning-out")]
                console.print(results_table(results))
                return results

            exported = erp.export()
            console.print(f"Night 1: the ERP exported {len(exported)} files "
                          f"({sum(len(rows) for rows in erp.rows.values()):,} records).")
            sync_all("Night 1: full load")
            _show_platform(console, planning_url)

            changed = erp.change_inventory(3)
            erp.add_bad_rows("inventory",
                             ["RM-00001", "P100", "", "12x", "EA", "0", "0", "2026-11-02T20:00:00Z"],
                             ["RM-00002", "P200", "LOT7", "40", "CRATE", "0", "0", "2026-11-02T20:00:00Z"],
                             ["", "P300", "", "7", "EA", "0", "0", "2026-11-02T20:00:00Z"])
            erp.export(("inventory",))
            console.print(f"Morning: three balances moved ({', '.join(changed)}) and the next export carries "
                          "three mistyped rows.")
            results = sync_all("Morning: net change")
            sent = results[-1]
            console.print(f"[bold]{sent.records_out}[/] record(s) sent to the planning platform: "
                          f"{', '.join(f'{n} {e}' for e, n in sent.per_entity.items()) or 'none'}.")

            results = sync_all("Again, with nothing new")
            console.print(f"[bold]{results[-1].records_out}[/] record(s) sent: nothing changed, nothing moves.")

            console.rule("Status")
            console.print(status_table(runtime))
            _show_quarantine(console, runtime)
        if folder is not None:
            console.print(f"\nThe estate is kept in {work}: try `syncfabric status -e {estate_file}`.")


def _show_platform(console: Console, url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    counts = {entity: int(httpx.get(f"{url}/api/input/{entity}/", params={"limit": 1}, headers=headers)
                          .headers.get("X-Total-Count", 0))
              for entity in ("location", "item", "buffer")}
    buffers = httpx.get(f"{url}/api/input/buffer/", params={"limit": 5}, headers=headers).json()
    table = Table("item", "location", "on hand", "safety stock (minimum)",
                  title=f"At the planning platform: {counts['location']} locations, {counts['item']} items, "
                        f"{counts['buffer']} buffers (first 5)")
    for buffer in buffers:
        table.add_row(buffer["item"], buffer["location"], str(buffer.get("onhand")), str(buffer.get("minimum")))
    console.print(table)


def _show_quarantine(console: Console, runtime: Runtime) -> None:
    entries = runtime.store.quarantine()
    table = Table("where", "key", "reasons", title=f"Quarantine: {len(entries)} record(s) waiting for a fix")
    for entry in entries:
        table.add_row(entry.location, entry.record_key or "—", "\n".join(entry.reasons))
    console.print(table)
