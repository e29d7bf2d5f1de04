"""Loading an estate file: read, override from the environment, validate everything, decode.

    estate = load_estate("estate.yaml")             # ConfigError listing every problem, or a LoadedEstate
    problems = validate_estate_file("estate.yaml")  # the same checks, as a list of lines, for `estate check`

Validation runs in layers, each reporting all it finds: YAML (syntax, duplicate keys), structure (the JSON Schema
that editors use too), secrets written inline, and, once the shape is right, references between parts (systems,
entities, mappings, mapped fields, cron schedules, connector kinds, their connection settings and credentials).
Each problem reads ``estate.yaml:14:5: expected integer >= 1, got 0 @ $.flows.items-in.batch_size``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from syncfabric.config._findings import Locator, format_path
from syncfabric.config._overrides import apply_overrides
from syncfabric.config._secrets import inline_secret_findings, mask_url
from syncfabric.config._semantic import msgspec_finding, semantic_findings
from syncfabric.config._structure import structure_findings
from syncfabric.config._yaml import parse
from syncfabric.config.schema import Estate, System
from syncfabric.errors import ConfigError

_RELATIVE_SQLITE = re.compile(r"^(sqlite(?:\+\w+)?:///)(?!/)([^?]+)(\?.*)?$")


@dataclass(frozen=True, repr=False)
class LoadedEstate:
    """A valid estate and what it needs around it: where it came from, its store, and the environment its
    secrets are read from — at call time, so a rotated secret is picked up and none is kept here."""

    estate: Estate
    path: Path
    base_dir: Path
    store_url: str
    """``estate.store`` with a relative SQLite path made absolute against ``base_dir``."""
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, compare=False)

    def system(self, name: str) -> System:
        try:
            return self.estate.systems[name]
        except KeyError:
            known = ", ".join(sorted(self.estate.systems))
            raise ConfigError([f"no system {name!r} in the estate (systems: {known})"], str(self.path)) from None

    def secrets(self, system_name: str) -> dict[str, str]:
        """The system's credentials, read from the environment now; ConfigError naming each one missing."""
        system = self.system(system_name)
        values: dict[str, str] = {}
        missing: list[str] = []
        for credential, ref in system.credentials.items():
            value = self.environ.get(ref.env)
            if value:
                values[credential] = value
            else:
                missing.append(f"system {system_name!r}: credential {credential!r} needs the environment variable "
                               f"{ref.env}, which is not set")
        if missing:
            raise ConfigError(missing, str(self.path))
        return values

    def connection(self, system_name: str) -> Any:
        """The system's ``connection`` decoded into its connector kind's ``config_type``."""
        from syncfabric.connectors import registry

        system = self.system(system_name)
        try:
            config_type = registry.config_type(system.kind)
            return msgspec.convert(system.connection, config_type, strict=False)
        except (KeyError, ImportError, AttributeError) as error:
            problem = f"system {system_name!r}: connector kind {system.kind!r} cannot be loaded: {error}"
        except msgspec.ValidationError as error:
            found = msgspec_finding(error, config_type, ("systems", system_name, "connection"))
            problem = f"system {system_name!r}: {found.message} @ {format_path(found.path or ())}"
        raise ConfigError([problem], str(self.path))

    def __repr__(self) -> str:
        return (f"LoadedEstate(name={self.estate.name!r}, path={str(self.path)!r}, "
                f"store_url={mask_url(self.store_url)!r}, systems={sorted(self.estate.systems)}, "
                f"flows={sorted(self.estate.flows)})")


def load_estate(path: str | os.PathLike[str], environ: Mapping[str, str] = os.environ) -> LoadedEstate:
    """Load and validate an estate file with its environment overrides; ConfigError carries every problem."""
    estate_path = Path(path)
    problems, estate = _check(estate_path, environ)
    if problems or estate is None:
        raise ConfigError(problems, str(estate_path))
    base_dir = estate_path.resolve().parent
    return LoadedEstate(estate=estate, path=estate_path, base_dir=base_dir,
                        store_url=resolve_store_url(estate.store, base_dir), environ=environ)


def validate_estate_file(path: str | os.PathLike[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """Every problem of an estate file with its environment overrides, in file order; empty when valid."""
    return _check(Path(path), environ)[0]


def resolve_store_url(url: str, base_dir: Path) -> str:
    """``sqlite:///data/sf.db`` → ``sqlite:////abs/base_dir/data/sf.db``; other URLs are returned unchanged."""
    found = _RELATIVE_SQLITE.match(url)
    if not found or found.group(2) == ":memory:":
        return url
    prefix, file, query = found.group(1), found.group(2), found.group(3) or ""
    target = Path(file).expanduser()
    if not target.is_absolute():
        target = base_dir / target
    return f"{prefix}{target.resolve().as_posix()}{query}"


def _check(path: Path, environ: Mapping[str, str]) -> tuple[list[str], Estate | None]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return [f"{name}: cannot read the estate file: {reason}"], None
    document, findings = parse(text)
    if document is None:
        return Locator(name, {}).format_all(findings), None
    data = document.data
    overridden, override_findings = apply_overrides(data, environ)
    findings += override_findings
    findings += inline_secret_findings(data, overridden)
    structural = structure_findings(data)
    findings += structural
    estate: Estate | None = None
    if not structural:
        try:
            estate = msgspec.convert(data, Estate)
        except msgspec.ValidationError as error:  # the schema and the Structs disagree: still say where
            findings.append(msgspec_finding(error, Estate, ()))
        else:
            findings += semantic_findings(estate)
    problems = Locator(name, document.positions, overridden).format_all(findings)
    return problems, estate if not problems else None


__all__ = ["LoadedEstate", "load_estate", "resolve_store_url", "validate_estate_file"]
