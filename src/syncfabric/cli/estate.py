"""Commands on the estate file and the model: ``validate``, ``model``, ``estate``, ``record show``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from syncfabric.cli.common import (
    DEFAULT_ESTATE,
    EstateOption,
    _boundary,
    _runtime,
    app,
    console,
    errors,
)
from syncfabric.errors import SyncfabricError

model_app = typer.Typer(help="The canonical manufacturing model.", no_args_is_help=True)
estate_app = typer.Typer(help="The estate file.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(estate_app, name="estate")


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="Estate file to check.")] = DEFAULT_ESTATE) -> None:
    """Check an estate file; report every problem with file, line and JSON path."""
    from syncfabric.config import validate_estate_file

    problems = validate_estate_file(file)
    if problems:
        errors.print(f"[bold red]{len(problems)} problem(s)[/] in {file}")
        for problem in problems:
            errors.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2)
    console.print(f"[green]✓[/] {file} is valid")


@model_app.command("list")
def model_list() -> None:
    """List the canonical entities, in dependency order."""
    from syncfabric.model.schema import describe

    table = Table("entity", "domain", "key", "fields", "what it is", title="Canonical entities")
    for row in describe():
        table.add_row(row.entity, row.domain, ", ".join(row.key_fields), str(row.field_count), row.summary)
    console.print(table)


@model_app.command("schema")
def model_schema(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for one <entity>.schema.json per entity.")] = Path(
        "schemas/model"),
) -> None:
    """Write a JSON Schema per canonical entity."""
    from syncfabric.model.schema import write_schemas

    written = write_schemas(out)
    console.print(f"wrote {len(written)} schemas to {out}")


@estate_app.command("schema")
def estate_schema() -> None:
    """Print the estate file's JSON Schema (for editors)."""
    from syncfabric.config import estate_json_schema

    sys.stdout.write(json.dumps(estate_json_schema(), indent=2) + "\n")


record_app = typer.Typer(help="Stored canonical records.", no_args_is_help=True)
app.add_typer(record_app, name="record")


@record_app.command("show")
def record_show(
    entity: Annotated[str, typer.Argument(help="The canonical entity: item, inventory_balance, ...")],
    key: Annotated[str, typer.Argument(help="The record's canonical key (e.g. B|P1| for a balance).")],
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Show a stored record: its current payload, the raw record it was mapped from, and the lineage of every
    version (source system, where in the source, batch, mapping version)."""
    with _boundary(), _runtime(estate) as runtime:
        store = runtime.store
        row = store.get(entity, key)
        if row is None:
            raise SyncfabricError(f"no {entity} {key!r} in the store")
        state = "deleted" if row.deleted else "live"
        console.print(f"[bold]{entity} {key}[/] — version {row.version}, {state}, "
                      f"updated {row.updated_at:%Y-%m-%d %H:%M:%S}", highlight=False)
        if row.payload is not None:
            console.print(json.dumps(json.loads(row.payload), indent=2, ensure_ascii=False), highlight=False,
                          markup=False, soft_wrap=True)
        source = next(store.sources(entity, keys=[key]), None)
        if source is not None:
            console.print(f"[bold]raw record[/] (flow {source.flow}, {source.source_id or 'no location'})",
                          highlight=False)
            console.print(source.raw, highlight=False, markup=False, soft_wrap=True)
        lineage = Table("seq", "version", "op", "recorded", "system", "where", "batch", "mapping version",
                        title="lineage")
        for change in store.history(entity, key):
            lineage.add_row(str(change.seq), str(change.version), change.op.value,
                            f"{change.recorded_at:%Y-%m-%d %H:%M:%S}", change.lineage.source_system,
                            change.lineage.source_id, change.lineage.batch_id, change.lineage.mapping_version)
        console.print(lineage)
