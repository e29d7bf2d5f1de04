"""Inbound flows store the cross-reference links records claim, in the page's transaction; conflicts quarantine."""

from __future__ import annotations

import pytest

from syncfabric.config.schema import Mapping
from syncfabric.flows.inbound import run_inbound
from syncfabric.mapping import FieldMap
from syncfabric.store import Store
from tests.flows.test_inbound import ListSource

ITEMS = Mapping(system="erp", entity="item", fields={
    "item_id": {"from": "MATNR", "xref": {"entity": "item", "derive": {"strip_prefix": "MAT-", "remove": "-"}}},
    "base_unit": {"const": "EA"},
})


def run(store: Store, pages: list[list[dict[str, str]]]):
    return run_inbound(store, "items-in", ListSource(pages), FieldMap("items", ITEMS), mode="changes",
                       source="items")


def test_links_are_stored_with_the_records(store: Store) -> None:
    result = run(store, [[{"MATNR": "MAT-100-200"}, {"MATNR": "MAT-100-300"}]])

    assert result.inserted == 2
    assert store.xref("erp", "item", "MAT-100-200") == "100200"
    assert store.xref_external("erp", "item", "100300") == "MAT-100-300"
    again = run(store, [[], [{"MATNR": "MAT-100-200"}]])  # a change read resumes after the page already read
    assert again.unchanged == 1 and again.quarantined == 0  # re-linking the same pair is a no-op


def test_two_ids_claiming_one_key_in_a_page_are_not_merged(store: Store) -> None:
    result = run(store, [[{"MATNR": "MAT-100-200"}, {"MATNR": "MAT-1002-00"}]])

    assert (result.inserted, result.quarantined) == (1, 1)
    [entry] = store.quarantine()
    assert entry.reasons == ["xref conflict: canonical item '100200' is already linked to erp id 'MAT-100-200', "
                             "not 'MAT-1002-00'"]
    assert store.xref("erp", "item", "MAT-1002-00") is None


def test_a_conflict_the_store_reports_at_write_quarantines_the_record(store: Store,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run(store, [[{"MATNR": "MAT-100-200"}]])
    # Another writer linked the key between the check and the write: the store itself refuses the link.
    monkeypatch.setattr(store, "xref", lambda *args: None)
    monkeypatch.setattr(store, "xref_external", lambda *args: None)

    result = run(store, [[], [{"MATNR": "MAT-1002-00"}, {"MATNR": "MAT-100-300"}]])

    assert (result.inserted, result.quarantined) == (1, 1)
    [entry] = store.quarantine()
    assert entry.record_key == "100200" and entry.reasons[0].startswith("xref conflict: ")
    assert "already linked" in entry.reasons[0]
