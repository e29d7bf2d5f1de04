"""Secrets stay out of the estate file and out of every message.

A secret is given by reference (``credentials: {token: {env: PLANNING_TOKEN}}``) and read from the environment only
when a connector needs it. A connection setting that is named like a secret and holds plain text is refused, and
so is a password written into the store URL (it belongs in ``SYNCFABRIC__STORE``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from syncfabric.config._findings import Finding, JsonPath

INLINE_SECRET = "secrets must be given as {env: VARIABLE}, not inline"

_SECRET_WORD = re.compile(r"(?:^|_)(?:password|passwd|pwd|secret|token|api_?key|private_?key)$")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def is_secret_key(key: str) -> bool:
    """``password``, ``db_password``, ``client_secret``, ``access_token``, ``api_key``, ``apiKey``: yes.
    ``token_url``, ``secret_name``, ``password_file``: no (they name where a secret is, not the secret)."""
    words = _CAMEL.sub(r"_\1", key).lower().replace("-", "_").replace(".", "_")
    return bool(_SECRET_WORD.search(words))


def inline_secret_findings(data: Any, overrides: Mapping[JsonPath, str]) -> list[Finding]:
    """Connection settings that hold a secret as plain text, and a store URL with a password in the file."""
    findings: list[Finding] = []
    if not isinstance(data, dict):
        return findings
    systems = data.get("systems")
    if isinstance(systems, dict):
        for name, system in systems.items():
            if isinstance(system, dict):
                for path, key in _secret_keys(system.get("connection"), ("systems", name, "connection")):
                    variable = re.sub(r"[^A-Z0-9]+", "_", f"{name}_{key}".upper())
                    findings.append(Finding(
                        f"{INLINE_SECRET}: remove it from connection and add under credentials "
                        f"{key}: {{env: {variable}}}", path))
    store = data.get("store")
    if isinstance(store, str) and ("store",) not in overrides and _has_password(store):
        findings.append(Finding(f"{INLINE_SECRET}: give the store URL with its password in the environment "
                                f"variable SYNCFABRIC__STORE", ("store",)))
    return findings


def _secret_keys(value: Any, path: JsonPath) -> Iterator[tuple[JsonPath, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and is_secret_key(key):
                yield (*path, key), key
            else:
                yield from _secret_keys(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_keys(item, (*path, index))


def without_inline_secrets(value: Any) -> Any:
    """``value`` less the settings :func:`inline_secret_findings` reports, so that they are not reported twice."""
    if isinstance(value, dict):
        return {key: without_inline_secrets(item) for key, item in value.items()
                if not (isinstance(item, str) and is_secret_key(key))}
    if isinstance(value, list):
        return [without_inline_secrets(item) for item in value]
    return value


def _has_password(url: str) -> bool:
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, fit to print."""
    try:
        parts = urlsplit(url)
        if not parts.password:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "<unparsable URL>"
