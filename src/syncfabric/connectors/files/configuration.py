"""Configuration of a drop-folder system."""

from __future__ import annotations

from typing import Literal

import msgspec


class FilesConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    folder: str
    """The drop folder the system writes its exports into; relative to the estate file's folder."""
    format: Literal["csv"] = "csv"
    """File format."""
    delimiter: str = ","
    """CSV field delimiter."""
    encoding: str = "utf-8"
    """Text encoding of the files."""
    marker_suffix: str | None = None
    """If set (e.g. ``.done``), a file is read only once a marker file ``<name><suffix>`` exists beside it.
    Without it, files are taken as complete when they appear, so the writer must rename them into place."""
    archive_folder: str = "archive"
    """Where read files are moved after their records are committed; relative to ``folder``."""
