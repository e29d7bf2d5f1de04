"""What every command module shares: the typer app, the consoles, the ``--estate`` option and the filter options,
and the error boundary.
Errors are translated here once: a ConfigError lists every problem and exits 2, any other SyncfabricError prints its
message and exits 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from syncfabric.errors import ConfigError, SyncfabricError

app = typer.Typer(help="syncfabric: keep the planning platform fed with fresh, complete, trusted data.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

console = Console()
errors = Console(stderr=True)
for _console in (console, errors):
    if not _console.is_terminal:  # logs and pipes: wide enough that tables stay readable
        _console.width = max(_console.width, 140)

EstateOption = Annotated[Path, typer.Option("--estate", "-e", envvar="SYNCFABRIC_ESTATE",
                                            help="The estate file.", show_default=True)]
DEFAULT_ESTATE = Path("estate.yaml")

# The filters and switches the quarantine, dead-letter and replay commands share.
FlowFilter = Annotated[str | None, typer.Option(help="Only this flow.")]
SystemFilter = Annotated[str | None, typer.Option(help="Only this system.")]
EntityFilter = Annotated[str | None, typer.Option(help="Only this entity.")]
KeyFilter = Annotated[str | None, typer.Option(help="Only this record key.")]
ReasonFilter = Annotated[str | None, typer.Option(help="Only reasons containing this text.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@contextmanager
def _boundary() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        errors.print(f"[bold red]invalid configuration[/] {exc.source}".rstrip())
        for problem in exc.problems:
            errors.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except SyncfabricError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _runtime(estate: Path):
    from syncfabric.config import load_estate
    from syncfabric.flows.runtime import Runtime

    return Runtime(load_estate(estate))


def _masked(url: str) -> str:
    from syncfabric.config._secrets import mask_url

    return mask_url(url)


def _actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _all_found(ids: list[int] | None, entries: list, what: str) -> list:
    """``entries`` (quarantine entries, dead letters), once every id a command named is among them; else an error
    naming those that are not."""
    missing = sorted(set(ids or ()) - {entry.id for entry in entries})
    if missing:
        raise SyncfabricError(f"no {what} {', '.join(map(str, missing))} (with these filters)")
    return entries
