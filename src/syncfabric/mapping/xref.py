"""ID cross-reference: a system's own id for a record, linked to the canonical key.

The same item is ``MAT-100-200`` in one ERP, ``100200`` in another and ``I100200`` at the planning platform. A
mapping derives the canonical key from the external id by rules (``{from: MATNR, xref: {entity: item, derive:
{strip_prefix: "MAT-", remove: "-"}}}``) and claims the link; the inbound flow records the link in the same
transaction as the record. A conflict, two external ids claiming one canonical key or one external id claiming two
keys, is a problem for the record, never silently merged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

DERIVE_RULES = ("strip_prefix", "strip_suffix", "remove", "strip_leading_zeros", "pad", "prefix", "case")


@dataclass(frozen=True, slots=True)
class XrefClaim:
    """One link a mapped record asks for: ``system``'s id ``external_id`` of ``entity`` is canonical ``key``."""

    system: str
    entity: str
    external_id: str
    key: str


class XrefLookup(Protocol):
    def xref(self, system: str, entity: str, external_id: str) -> str | None: ...
    def xref_external(self, system: str, entity: str, key: str) -> str | None: ...


def derive_key(external_id: str, rules: dict[str, Any]) -> str:
    """The canonical key for ``external_id``, applying the rules in the order of :data:`DERIVE_RULES`."""
    key = external_id
    prefix = rules.get("strip_prefix")
    for candidate in _listed(prefix):
        if key.startswith(candidate):
            key = key.removeprefix(candidate)
            break
    for candidate in _listed(rules.get("strip_suffix")):
        if key.endswith(candidate):
            key = key.removesuffix(candidate)
            break
    for text in _listed(rules.get("remove")):
        key = key.replace(text, "")
    if rules.get("strip_leading_zeros"):
        key = key.lstrip("0") or "0"
    pad = rules.get("pad")
    if isinstance(pad, dict):
        key = key.rjust(int(pad.get("width", 0)), str(pad.get("fill", "0")))
    key = str(rules.get("prefix", "")) + key
    case = rules.get("case")
    if case == "upper":
        key = key.upper()
    elif case == "lower":
        key = key.lower()
    if not key:
        raise ValueError(f"external id {external_id!r} derives an empty canonical key")
    return key


def rule_problems(rules: Any) -> list[str]:
    """What is wrong with a ``derive:`` block, for estate validation."""
    if not isinstance(rules, dict):
        return [f"expected derive rules ({', '.join(DERIVE_RULES)}), got {rules!r}"]
    problems = [f"unknown derive rule {name!r} (rules: {', '.join(DERIVE_RULES)})"
                for name in rules if name not in DERIVE_RULES]
    if rules.get("case") not in (None, "upper", "lower"):
        problems.append(f"case must be upper or lower, got {rules['case']!r}")
    return problems


def conflicts(claims: Iterable[XrefClaim], store: XrefLookup, pending: dict[tuple[str, str, str], str],
              pending_keys: dict[tuple[str, str, str], str]) -> list[str]:
    """Why ``claims`` cannot be linked, given the store and the links claimed earlier in the same page.

    ``pending`` (external id → key) and ``pending_keys`` (key → external id) are updated with the claims that fit,
    only when all of them fit.
    """
    reasons: list[str] = []
    for claim in claims:
        by_id = (claim.system, claim.entity, claim.external_id)
        by_key = (claim.system, claim.entity, claim.key)
        linked_key = pending.get(by_id) or store.xref(*by_id)
        if linked_key is not None and linked_key != claim.key:
            reasons.append(f"xref conflict: {claim.system} {claim.entity} {claim.external_id!r} is linked to "
                           f"canonical key {linked_key!r}, not {claim.key!r}")
        linked_id = pending_keys.get(by_key) or store.xref_external(*by_key)
        if linked_id is not None and linked_id != claim.external_id:
            reasons.append(f"xref conflict: canonical {claim.entity} {claim.key!r} is already linked to "
                           f"{claim.system} id {linked_id!r}, not {claim.external_id!r}")
    if not reasons:
        for claim in claims:
            pending[(claim.system, claim.entity, claim.external_id)] = claim.key
            pending_keys[(claim.system, claim.entity, claim.key)] = claim.external_id
    return reasons


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
