"""The connector contract as a reusable pytest test class.

A connector's test module subclasses :class:`ConnectorContract` (the subclass's name must start with ``Test``),
says which sources and entities to exercise, and overrides the factory methods; every test of the contract then
runs against the real system (or emulator) the factories point at::

    from syncfabric.testing.connector_kit import ConnectorContract

    class TestMyErpContract(ConnectorContract):
        full_entity = "items"          # a source read_full can read, with at least two pages
        changes_entity = "items"       # a source read_changes can read
        write_entity = "planned_order"

        def make_connector(self): return MyErpConnector("erp", MyErpConfig(url=..., page_size=5), {...})
        def make_connector_with_bad_credentials(self): return MyErpConnector("erp", ..., {"password": "wrong"})
        def record_id(self, entity, record): return record.data["id"]
        def change_one(self, entity): ...change one record in the system...; return its id
        def outbound_record(self): return OutboundRecord("PLN-1", 1, {...})
        def effects_of(self, record): ...count the documents the system holds for it...
        def break_system(self): ...make the system fail transiently (outage, 503s)...
        def repair_system(self): ...

A factory left as it is skips the tests that need it (with the reason), except :meth:`make_connector`. Use
pytest fixtures for the system itself: an ``autouse`` fixture of the subclass runs before each test and can store
what the factories need on ``self``.

What is checked:

- declared ``capabilities`` match the methods the class overrides;
- ``test_connection`` works, and fails with a PermanentError naming the system on bad credentials;
- ``read_full`` pages resume from every cursor with no record lost or read twice, and the last page is complete;
- ``read_changes`` from a cursor returns a changed record, and nothing else than what it returned before the
  change (a connector may re-read a small overlap, never the whole set);
- ``write`` of the same key and version twice has one effect in the system and is accepted both times;
- failures are ``TransientError`` / ``PermanentError`` with ``system`` set;
- every configuration field (nested ones too) has a description, and no field holds a secret.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec
import pytest

from syncfabric.connectors.base import Capability, Connector, OutboundRecord, RawRecord
from syncfabric.errors import PermanentError, TransientError

_METHODS = {Capability.READ_FULL: "read_full", Capability.READ_CHANGES: "read_changes",
            Capability.WRITE: "write", Capability.CALL: "call"}
_SECRET_WORDS = re.compile(r"(password|passwd|secret|token|api_?key|private_?key|credential)", re.IGNORECASE)


class ConnectorContract:
    """The connector contract; subclass it in a test module and override the factories."""

    full_entity: ClassVar[str | None] = None
    """A source ``read_full`` can read in at least two pages."""
    changes_entity: ClassVar[str | None] = None
    """A source ``read_changes`` can read."""
    write_entity: ClassVar[str | None] = None
    """The entity ``write`` is exercised with."""
    unknown_entity: ClassVar[str] = "no-such-entity"
    """A source the system does not have: reading it must fail permanently."""

    # ---- factories -------------------------------------------------------------------------------------------

    def make_connector(self) -> Connector:
        """A connector of the system under test, with working credentials."""
        raise NotImplementedError("override make_connector")

    def make_connector_with_bad_credentials(self) -> Connector | None:
        return None

    def record_id(self, entity: str, record: RawRecord) -> str:
        """The identity of a raw record (its key in the system)."""
        raise NotImplementedError("override record_id")

    def change_one(self, entity: str) -> str | None:
        """Change one record of ``entity`` in the system and return its id (None: not possible here)."""
        return None

    def outbound_record(self) -> OutboundRecord | None:
        return None

    def effects_of(self, record: OutboundRecord) -> int:
        """How many documents the system holds for ``record`` (1 after one or more writes of it)."""
        raise NotImplementedError("override effects_of")

    def break_system(self) -> bool:
        """Make the system fail transiently; return False when that is not possible here."""
        return False

    def repair_system(self) -> None:
        """Undo :meth:`break_system`."""

    # ---- helpers ---------------------------------------------------------------------------------------------

    @pytest.fixture
    def connector(self) -> Iterator[Connector]:
        with self.make_connector() as opened:
            yield opened

    def _ids(self, entity: str, pages: Any) -> list[str]:
        return [self.record_id(entity, record) for page in pages for record in page.records]

    def _needs(self, connector: Connector, capability: Capability, entity: str | None) -> str:
        if capability not in connector.capabilities:
            pytest.skip(f"{connector.kind} does not declare {capability.name}")
        if entity is None:
            pytest.skip(f"no entity given for {capability.name} (set the class attribute)")
        return entity

    # ---- the contract ----------------------------------------------------------------------------------------

    def test_declared_capabilities_match_implemented_methods(self, connector: Connector) -> None:
        cls = type(connector)
        for capability, method in _METHODS.items():
            implemented = getattr(cls, method) is not getattr(Connector, method)
            declared = capability in cls.capabilities
            assert implemented == declared, (
                f"{cls.__name__}: {capability.name} is {'' if declared else 'not '}declared but {method} is "
                f"{'' if implemented else 'not '}implemented")

    def test_connection_succeeds(self, connector: Connector) -> None:
        connector.test_connection()

    def test_connection_with_bad_credentials_fails_clearly(self) -> None:
        bad = self.make_connector_with_bad_credentials()
        if bad is None:
            pytest.skip("no bad-credentials connector given")
        with bad, pytest.raises(PermanentError) as caught:
            bad.test_connection()
        assert caught.value.system == bad.system, "the error must name the system"
        assert str(caught.value).strip()

    def test_read_full_resumes_from_every_cursor_without_loss_or_duplicates(self, connector: Connector) -> None:
        entity = self._needs(connector, Capability.READ_FULL, self.full_entity)
        pages = list(connector.read_full(entity))
        assert len(pages) >= 2, "configure a page size small enough for at least two pages"
        assert pages[-1].complete and not any(page.complete for page in pages[:-1])
        ids = self._ids(entity, pages)
        assert len(ids) == len(set(ids)), "a full read returned a record twice"
        read_before = 0
        for page in pages[:-1]:
            read_before += len(page.records)
            assert page.cursor is not None, "every page but the last must carry a cursor to resume from"
            resumed = self._ids(entity, connector.read_full(entity, page.cursor))
            assert resumed == ids[read_before:], f"resuming after cursor {page.cursor!r} lost or repeated records"

    def test_read_changes_returns_only_newer_records(self, connector: Connector) -> None:
        entity = self._needs(connector, Capability.READ_CHANGES, self.changes_entity)
        pages = list(connector.read_changes(entity, None))
        everything = set(self._ids(entity, pages))
        cursor = next((page.cursor for page in reversed(pages) if page.cursor is not None), None)
        assert everything and cursor is not None, "a net-change read must end on a cursor"
        before = set(self._ids(entity, connector.read_changes(entity, cursor)))
        assert len(before) < len(everything), "reading from the last cursor returned everything again"
        changed = self.change_one(entity)
        if changed is None:
            pytest.skip("change_one not given")
        after = set(self._ids(entity, connector.read_changes(entity, cursor)))
        assert changed in after, f"the changed record {changed!r} was not read"
        assert after <= before | {changed}, f"records that did not change were read: {sorted(after - before)}"

    def test_write_same_key_and_version_twice_has_one_effect(self, connector: Connector) -> None:
        entity = self._needs(connector, Capability.WRITE, self.write_entity)
        record = self.outbound_record()
        if record is None:
            pytest.skip("outbound_record not given")
        first = connector.write(entity, [record])
        second = connector.write(entity, [record])
        assert first.accepted == [record.key], first.rejected
        assert second.accepted == [record.key], second.rejected
        assert self.effects_of(record) == 1

    def test_transient_failure_is_a_transient_error_naming_the_system(self, connector: Connector) -> None:
        if not self.break_system():
            pytest.skip("break_system not given")
        try:
            with pytest.raises(TransientError) as caught:
                if self.full_entity and Capability.READ_FULL in connector.capabilities:
                    list(connector.read_full(self.full_entity))
                else:
                    connector.test_connection()
        finally:
            self.repair_system()
        assert caught.value.system == connector.system

    def test_unknown_source_is_a_permanent_error_naming_the_system(self, connector: Connector) -> None:
        if Capability.READ_FULL not in connector.capabilities:
            pytest.skip("read_full not declared")
        with pytest.raises(PermanentError) as caught:
            list(connector.read_full(self.unknown_entity))
        assert caught.value.system == connector.system

    def test_configuration_fields_are_documented(self) -> None:
        cls = self.make_connector().config_type
        missing = [f"{owner}.{name}" for owner, name, doc in _fields(cls) if not doc]
        assert not missing, f"configuration fields without a description: {', '.join(missing)}"

    def test_secrets_are_not_configuration(self) -> None:
        connector = self.make_connector()
        named = [f"{owner}.{name}" for owner, name, _ in _fields(connector.config_type) if _SECRET_WORDS.search(name)]
        assert not named, f"secrets belong under credentials (secret_names), not in the configuration: {named}"
        text = msgspec.json.encode(connector.config).decode()
        leaked = [name for name, value in connector.secrets.items() if value and len(value) > 3 and value in text]
        assert not leaked, f"secret values found in the configuration: {leaked}"


def _fields(cls: type, seen: set[type] | None = None) -> Iterator[tuple[str, str, str | None]]:
    """(struct name, field name, description) of a msgspec Struct and the Structs nested in its fields."""
    seen = seen if seen is not None else set()
    if cls in seen or not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
        return
    seen.add(cls)
    docs = _attribute_docs(cls)
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        described = _meta_description(field.type)
        yield cls.__name__, field.name, docs.get(field.name) or described
        for nested in _struct_types(field.type):
            yield from _fields(nested, seen)


def _attribute_docs(cls: type) -> dict[str, str]:
    """Docstrings written under the fields (``name: type`` then ``\"\"\"text\"\"\"``), through the class's bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in zip(body, [*body[1:], None], strict=True):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[node.target.id] = following.value.value.strip()
    return docs


def _meta_description(info: msgspec.inspect.Type) -> str | None:
    if isinstance(info, msgspec.inspect.Metadata):
        return (info.extra_json_schema or {}).get("description") or _meta_description(info.type)
    return None


def _struct_types(info: msgspec.inspect.Type) -> Iterator[type]:
    if isinstance(info, msgspec.inspect.StructType):
        yield info.cls
    elif isinstance(info, msgspec.inspect.Metadata):
        yield from _struct_types(info.type)
    elif isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            yield from _struct_types(member)
    elif isinstance(info, msgspec.inspect.ListType | msgspec.inspect.SetType | msgspec.inspect.FrozenSetType
                     | msgspec.inspect.VarTupleType):
        yield from _struct_types(info.item_type)
    elif isinstance(info, msgspec.inspect.DictType):
        yield from _struct_types(info.value_type)
