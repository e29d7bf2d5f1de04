"""OData v2 query options as the emulator understands them: ``$filter`` expressions, ``$orderby``, and the JSON
value formats (``/Date(ms)/``, decimals as text).

``$filter`` supports ``eq ne gt ge lt le``, ``and``, ``or``, ``not``, parentheses, ``startswith(P,'x')`` and
``substringof('x',P)``, on string, number, boolean, ``null``, ``datetime'...'`` and ``datetimeoffset'...'``
literals. Anything else is a :class:`QueryError`, which the app answers with an OData error body and 400.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from syncfabric.sandbox.sap_odata.entities import DT, DTO, B, D, EntitySet

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


class QueryError(ValueError):
    """A query option the emulator cannot evaluate; the text says where."""


_TOKEN = re.compile(r"""\s*(?:
    (?P<typed>(?:datetimeoffset|datetime|guid|time)'[^']*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?[mMdDlLfF]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_/]*)
  | (?P<punct>[(),])
)""", re.VERBOSE)
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise QueryError(f"invalid $filter at position {position}: {text[position:position + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return out


class _Parser:
    def __init__(self, text: str, entity_set: EntitySet) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.entity_set = entity_set
        self.text = text

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise QueryError(f"invalid $filter: unexpected end of {self.text!r}")
        if expected is not None and token[1] != expected:
            raise QueryError(f"invalid $filter at position {token[2]}: expected {expected!r}, found {token[1]!r}")
        self.index += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek() is not None:
            token = self.peek()
            assert token is not None
            raise QueryError(f"invalid $filter at position {token[2]}: unexpected {token[1]!r}")
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while (token := self.peek()) and token[1] == "or":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while (token := self.peek()) and token[1] == "and":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def unary(self) -> Predicate:
        token = self.peek()
        if token and token[1] == "not":
            self.take()
            inner = self.unary()
            return lambda row: not inner(row)
        if token and token[1] == "(":
            self.take()
            inner = self.or_expr()
            self.take(")")
            return inner
        if token and token[1] in ("startswith", "substringof"):
            return self.function()
        return self.comparison()

    def prop(self) -> tuple[str, str]:
        kind, name, position = self.take()
        if kind != "name" or name not in self.entity_set.properties:
            raise QueryError(f"invalid $filter at position {position}: {name!r} is no property of "
                             f"{self.entity_set.type_name}")
        return name, self.entity_set.properties[name]

    def function(self) -> Predicate:
        _, name, _ = self.take()
        self.take("(")
        if name == "startswith":
            prop, _ = self.prop()
            self.take(",")
            text = self.literal("Edm.String")
            self.take(")")
            return lambda row: str(row.get(prop) or "").startswith(text)
        text = self.literal("Edm.String")
        self.take(",")
        prop, _ = self.prop()
        self.take(")")
        return lambda row: text in str(row.get(prop) or "")

    def comparison(self) -> Predicate:
        prop, edm = self.prop()
        _, operator, position = self.take()
        if operator not in _COMPARE:
            raise QueryError(f"invalid $filter at position {position}: unknown operator {operator!r}")
        value = self.literal(edm)
        return _compare(prop, operator, value)

    def literal(self, edm: str) -> Any:
        kind, text, position = self.take()
        try:
            if kind == "name" and text == "null":
                return None
            if kind == "name" and text in ("true", "false") and edm == B:
                return text == "true"
            if kind == "string" and edm not in (D, DT, DTO, B):
                return text[1:-1].replace("''", "'")
            if (kind == "number" and edm == D) or (kind == "number" and edm.startswith("Edm.Int")):
                return Decimal(text.rstrip("mMdDlLfF"))
            if kind == "typed" and edm in (DT, DTO):
                prefix, _, rest = text.partition("'")
                if (prefix == "datetimeoffset") != (edm == DTO):
                    raise QueryError(f"use {'datetimeoffset' if edm == DTO else 'datetime'}'...' for {edm}")
                return parse_datetime(rest[:-1], offset_required=prefix == "datetimeoffset")
        except (InvalidOperation, ValueError) as exc:
            raise QueryError(f"invalid $filter at position {position}: literal {text!r}: {exc}") from None
        raise QueryError(f"invalid $filter at position {position}: literal {text!r} does not fit type {edm}")


def _compare(prop: str, operator: str, value: Any) -> Predicate:
    def test(row: Row) -> bool:
        have = row.get(prop)
        if operator in ("eq", "ne"):
            same = have == value
            return same if operator == "eq" else not same
        if have is None or value is None:
            return False
        if operator == "gt":
            return bool(have > value)
        if operator == "ge":
            return bool(have >= value)
        if operator == "lt":
            return bool(have < value)
        return bool(have <= value)

    return test


def compile_filter(text: str, entity_set: EntitySet) -> Predicate:
    return _Parser(text, entity_set).parse()


def order_key(text: str, entity_set: EntitySet) -> list[tuple[str, bool]]:
    """``$orderby=A desc,B`` → [(A, True), (B, False)]; unknown properties are a QueryError."""
    out = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, _, direction = part.partition(" ")
        if name not in entity_set.properties or direction.strip() not in ("", "asc", "desc"):
            raise QueryError(f"invalid $orderby: {part!r}")
        out.append((name, direction.strip() == "desc"))
    return out


def sort_rows(rows: list[Row], order: list[tuple[str, bool]]) -> list[Row]:
    for name, descending in reversed(order):
        rows = sorted(rows, key=lambda row: _sortable(row.get(name)), reverse=descending)
    return rows


def _sortable(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else "")


# ---- JSON values ---------------------------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_datetime(text: str, *, offset_required: bool = False) -> dt.datetime:
    """ISO 8601 (a naive one is UTC, as SAP reads Edm.DateTime) → aware UTC datetime."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        if offset_required:
            raise ValueError("datetimeoffset needs a zone (Z or +hh:mm)")
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def to_json(edm: str, value: Any) -> Any:
    if value is None:
        return None
    if edm in (DT, DTO):
        millis = int((value - _EPOCH).total_seconds() * 1000)
        return f"/Date({millis}+0000)/" if edm == DTO else f"/Date({millis})/"
    if edm == D:
        return str(value)
    return value


def from_json(edm: str, value: Any, name: str) -> Any:
    """A value a client sent, in the property's Python form; ValueError naming the property otherwise."""
    if value is None:
        return None
    try:
        if edm in (DT, DTO):
            match = _DATE.match(str(value))
            if match:
                return _EPOCH + dt.timedelta(milliseconds=int(match.group(1)))
            return parse_datetime(str(value))
        if edm == D:
            if isinstance(value, bool):
                raise ValueError("not a decimal")
            return Decimal(str(value))
        if edm == B:
            if not isinstance(value, bool):
                raise ValueError("not a boolean")
            return value
        if not isinstance(value, str):
            raise ValueError("not a string")
        return value
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"property {name}: value {value!r} is not a valid {edm} ({exc})") from None
