"""The canonical store, chosen by URL: ``sqlite:///path/to/file.db`` (embedded default) or ``postgresql://...``."""

from __future__ import annotations

from syncfabric.store.base import (
    Alert,
    ApplyResult,
    Attempt,
    Change,
    DeadLetter,
    DeadLetterStatus,
    DeliveryBatch,
    DeliveryGroup,
    IncomingRecord,
    Lineage,
    NewDeadLetter,
    NewQuarantine,
    NewQuarantineEvent,
    NewSource,
    Op,
    QuarantineAction,
    QuarantineEntry,
    QuarantineEvent,
    QuarantineStatus,
    RecordBatch,
    RunRecord,
    RunStatus,
    SourceRecord,
    StateRow,
    Store,
    Transaction,
    content_hash,
    content_hashes,
)


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store a URL names, creating or upgrading its schema unless ``migrate`` is false."""
    from syncfabric.errors import ConfigError

    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        from syncfabric.store.sqlite import SqliteStore

        store: Store = SqliteStore(url)
    elif scheme in ("postgresql", "postgres"):
        from syncfabric.store.postgres import PostgresStore

        store = PostgresStore(url)
    else:
        raise ConfigError([f"unsupported store URL scheme {scheme!r}; use sqlite:///FILE or postgresql://..."])
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()  # do not leak the connection pool of a store the caller never receives
            raise
    return store


__all__ = [
    "ApplyResult", "Change", "IncomingRecord", "Lineage", "NewQuarantine", "NewQuarantineEvent", "NewSource", "Op",
    "QuarantineAction", "QuarantineEntry", "QuarantineEvent", "QuarantineStatus", "RecordBatch", "RunRecord",
    "RunStatus", "SourceRecord", "StateRow", "Store", "Transaction", "content_hash", "content_hashes", "open_store",
]
__all__ += ["Alert", "Attempt", "DeadLetter", "DeadLetterStatus", "NewDeadLetter"]
__all__ += ["DeliveryBatch", "DeliveryGroup"]
