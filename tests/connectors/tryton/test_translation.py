"""Tryton's answers translated without a server: error classes and typed JSON values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import pytest

from syncfabric.connectors.tryton.client import decode, encode
from syncfabric.connectors.tryton.exceptions import TrytonFault, translate_error, translate_fault
from syncfabric.connectors.tryton.streams import flatten, stamps_of
from syncfabric.errors import PermanentError, TransientError


@pytest.mark.parametrize(("error", "kind", "text"), [
    (["UserError", ["The quantity is too big.", "Max 10.", None]], PermanentError,
     "Tryton: The quantity is too big. - Max 10."),
    (["UserWarning", ["w.name", "Moves have no origin.", ""]], PermanentError,
     "Tryton warning 'w.name': Moves have no origin. (set accept_warnings: true"),
    (["ConcurrencyException", "Records were modified in the meanwhile"], TransientError, "ConcurrencyException"),
    (["database is locked", ""], TransientError, "database is locked"),
    (["LoginException", ["password", "Password", "password"]], PermanentError, "LoginException"),
])
def test_faults_translate_by_what_retrying_would_do(error, kind, text) -> None:
    translated = translate_fault(TrytonFault(error), system="erp", entity="item", key="K")
    assert type(translated) is kind and text in str(translated) and translated.key == "K"


@pytest.mark.parametrize(("status", "kind"), [(503, TransientError), (429, TransientError), (400, PermanentError),
                                              (401, PermanentError), (404, PermanentError)])
def test_http_answers_translate_by_status(status, kind) -> None:
    response = httpx.Response(status, headers={"Retry-After": "7"}, request=httpx.Request("POST", "http://t/db/rpc/"))
    translated = translate_error(response, system="erp")
    assert type(translated) is kind
    if kind is TransientError:
        assert translated.retry_after == 7


def test_typed_values_travel_in_trytons_encoding_and_come_back_as_exact_text() -> None:
    sent = encode([Decimal("2.40"), dt.date(2026, 12, 1), dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.UTC),
                   dt.timedelta(days=2)])
    assert sent[0] == {"__class__": "Decimal", "decimal": "2.40"}
    assert sent[1] == {"__class__": "date", "year": 2026, "month": 12, "day": 1}
    assert sent[2]["hour"] == 8 and sent[3] == {"__class__": "timedelta", "seconds": 172800.0}
    assert decode(sent[:3]) == ["2.40", "2026-12-01", "2026-12-01T08:30:00.000000Z"]
    assert decode(sent[3]) == {"seconds": 172800.0, "days": "2.0"}


def test_dotted_answers_become_nested_records_and_stamps_are_found_through_lists() -> None:
    row = {"id": 4, "default_uom": 1, "default_uom.": {"id": 1, "symbol": "u"},
           "lines.": [{"id": 9, "last_modified_at": "2026-12-01T10:00:00.000000Z", "product.": {"code": "A"}}],
           "last_modified_at": "2026-12-01T09:00:00.000000Z"}
    flat = flatten(row)
    assert flat["default_uom"] == {"id": 1, "symbol": "u"}
    assert flat["lines"][0]["product"] == {"code": "A"}
    assert max(stamps_of(flat, ("last_modified_at", "lines.last_modified_at"))) == "2026-12-01T10:00:00.000000Z"


def test_validate_names_unknown_sources_and_a_net_change_read_of_inventory(tmp_path) -> None:
    from tests.connectors.tryton.conftest import ESTATE

    from syncfabric.config import validate_estate_file

    text = ESTATE.read_text()
    assert "source:" not in text  # the flows read the source named after their entity
    broken = text.replace("entities: [bill_of_material], mode: changes,",
                          "entities: [bill_of_material], mode: changes, source: boms,")
    broken = broken.replace("entities: [inventory_balance], mode: full,", "entities: [inventory_balance], "
                            "mode: changes,")
    estate = tmp_path / "estate.yaml"
    estate.write_text(broken)
    problems = validate_estate_file(estate, environ={})
    assert any("no Tryton source 'boms'" in line and "boms-in" in line for line in problems), problems
    assert any("read in full only" in line and "inventory-in" in line for line in problems), problems
    assert len(problems) == 2
