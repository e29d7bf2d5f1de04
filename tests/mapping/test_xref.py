"""ID cross-reference: keys derived by rules, links claimed by records, conflicts reported and never merged."""

from __future__ import annotations

import msgspec
import pytest

from syncfabric.config.schema import Mapping
from syncfabric.mapping import FieldMap
from syncfabric.mapping.xref import XrefClaim, conflicts, derive_key, rule_problems


class Links:
    def __init__(self, *links: tuple[str, str, str, str]) -> None:
        self.by_id = {(s, e, x): k for s, e, x, k in links}
        self.by_key = {(s, e, k): x for s, e, x, k in links}

    def xref(self, system: str, entity: str, external_id: str) -> str | None:
        return self.by_id.get((system, entity, external_id))

    def xref_external(self, system: str, entity: str, key: str) -> str | None:
        return self.by_key.get((system, entity, key))


@pytest.mark.parametrize(("external", "rules", "key"), [
    ("MAT-100-200", {"strip_prefix": "MAT-", "remove": "-"}, "100200"),
    ("I100200", {"strip_prefix": ["X", "I"]}, "100200"),
    ("100200", {}, "100200"),
    ("000100200", {"strip_leading_zeros": True}, "100200"),
    ("100200-EU", {"strip_suffix": "-EU"}, "100200"),
    ("4711", {"pad": {"width": 8}, "prefix": "I"}, "I00004711"),
    ("ab-1", {"case": "upper"}, "AB-1"),
])
def test_derive_rules(external: str, rules: dict, key: str) -> None:
    assert derive_key(external, rules) == key


def test_a_key_derived_empty_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty canonical key"):
        derive_key("MAT-", {"strip_prefix": "MAT-"})


def test_unknown_rules_are_reported() -> None:
    assert rule_problems({"strip": "X", "case": "title"}) == [
        "unknown derive rule 'strip' (rules: strip_prefix, strip_suffix, remove, strip_leading_zeros, pad, prefix, "
        "case)", "case must be upper or lower, got 'title'"]


def test_a_mapped_record_claims_its_links() -> None:
    mapping = msgspec.convert({"system": "erp-eu", "entity": "item", "fields": {
        "item_id": {"from": "MATNR", "xref": {"entity": "item", "derive": {"strip_prefix": "MAT-", "remove": "-"}}},
        "base_unit": {"const": "EA"}}}, Mapping)

    record, claims = FieldMap("items", mapping).map({"MATNR": "MAT-100-200"})

    assert record.key == "100200"
    assert claims == [XrefClaim("erp-eu", "item", "MAT-100-200", "100200")]


def test_conflicts_with_the_store_and_within_a_page() -> None:
    store = Links(("erp", "item", "MAT-1", "1"))
    pending: dict = {}
    pending_keys: dict = {}

    assert conflicts([XrefClaim("erp", "item", "MAT-1", "1")], store, pending, pending_keys) == []
    assert conflicts([XrefClaim("erp", "item", "MAT-1", "2")], store, pending, pending_keys) == [
        "xref conflict: erp item 'MAT-1' is linked to canonical key '1', not '2'"]
    assert conflicts([XrefClaim("erp", "item", "MAT-01", "1")], store, pending, pending_keys) == [
        "xref conflict: canonical item '1' is already linked to erp id 'MAT-1', not 'MAT-01'"]
    assert conflicts([XrefClaim("erp", "item", "MAT-3", "3")], store, pending, pending_keys) == []
    assert conflicts([XrefClaim("erp", "item", "MAT-03", "3")], store, pending, pending_keys) == [
        "xref conflict: canonical item '3' is already linked to erp id 'MAT-3', not 'MAT-03'"]
    assert conflicts([XrefClaim("other", "item", "X3", "3")], store, pending, pending_keys) == []
