"""``mapping diff`` and ``mapping test``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
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

mapping_app = typer.Typer(help="Mappings: their impact on the store, and their tests.", no_args_is_help=True)
app.add_typer(mapping_app, name="mapping")


@mapping_app.command("diff")
def mapping_diff(
    flows: Annotated[list[str] | None, typer.Option("--flow", help="Only this inbound flow (repeatable).")] = None,
    samples: Annotated[int, typer.Option(help="Records shown per flow.")] = 20,
    check: Annotated[bool, typer.Option("--check", help="Exit with code 1 when any record would change.")] = False,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Dry run: which stored records the estate's mappings, as the file now says, would change, and which
    quarantined records they would now accept. Writes nothing."""
    from syncfabric.flows.impact import impact_tables, mapping_impact

    with _boundary(), _runtime(estate) as runtime:
        columns = (SpinnerColumn(), TextColumn("[bold]re-mapping"), BarColumn(),
                   TextColumn("{task.completed:,} records"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
            task = progress.add_task("diff", total=None)
            impact = mapping_impact(runtime.store, runtime.estate, flows=flows, samples=samples,
                                    progress=lambda n: progress.advance(task, n))
        summary, versions, samples_table, notes = impact_tables(impact)
        console.print(summary)
        for line in versions:
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        if samples_table.row_count:
            console.print(samples_table)
        for note in notes:
            errors.print(note, highlight=False)
        console.print(impact.summary(), highlight=False)
        if check and impact.changes:
            raise typer.Exit(1)


@mapping_app.command("test")
def mapping_test(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Fixture files or folders (default: mapping-tests/ next to the estate file).", show_default=False)] = None,
    estate: EstateOption = DEFAULT_ESTATE,
) -> None:
    """Run mapping tests: YAML fixtures of raw records with the canonical record (or the errors) each must give."""
    from rich.text import Text

    from syncfabric.config import load_estate
    from syncfabric.flows.mapping_cases import find_files, load_cases, run_cases

    with _boundary():
        loaded = load_estate(estate)
        files = find_files(paths or [], loaded.base_dir / "mapping-tests")
        cases = [case for file in files for case in load_cases(file, loaded.estate)]
        results = run_cases(loaded.estate, cases)
        failed = [result for result in results if not result.passed]
        table = Table("file", "mapping", "case", "result",
                      title=f"{len(results) - len(failed)} of {len(results)} mapping tests passed")
        for result in results:
            case = result.case
            table.add_row(f"{case.file.name}:{case.line}", case.mapping, Text(case.name),
                          "[green]pass[/]" if result.passed else "[red]FAIL[/]")
        console.print(table)
        for result in failed:
            console.print(f"[red]FAIL[/] {result.case.where} {result.case.name} ({result.case.mapping})",
                          highlight=False)
            for line in result.failures:
                console.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
        if failed:
            raise typer.Exit(1)
