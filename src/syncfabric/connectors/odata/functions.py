"""Mapping functions for SAP records, used from an estate's mappings as
``{function: "syncfabric.connectors.odata.functions:text_in", args: [to_Description, {const: EN}]}``."""

from __future__ import annotations

from typing import Any


def text_in(texts: Any, language: str, field: str = "ProductDescription") -> str | None:
    """The text of one language from an expanded list of language-dependent texts (``to_Description``), falling
    back to the first text when that language is missing."""
    if not isinstance(texts, list) or not texts:
        return None
    for text in texts:
        if isinstance(text, dict) and text.get("Language") == language:
            return text.get(field)
    first = texts[0]
    return first.get(field) if isinstance(first, dict) else None
