"""Estate tests write small YAML files to a temporary folder and register a fake connector kind."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from syncfabric.connectors import registry

VALID = """\
version: 1
name: test-estate
store: sqlite:///data/sf.db
systems:
  erp:
    kind: fake
    description: the ERP
    connection:
      url: https://erp.example.test
      port: 8443
    credentials:
      token: {env: ERP_TOKEN}
  planner:
    kind: fake
    connection: {url: https://plan.example.test}
domains:
  items:
    entity: item
    sync_model: batch_net_change
    schedule: "*/5 * * * *"
    sla: {freshness_minutes: 15, completeness: 0.99}
mappings:
  erp-items:
    system: erp
    entity: item
    fields:
      item_id: ITEM_NO
      description: header.text
      base_unit: {const: EA}
  erp-stock:
    system: erp
    entity: inventory_balance
    fields:
      item_id: ITEM_NO
      location_id: PLANT
      on_hand: {value: QTY, unit: UOM}
      as_of: STAMP
flows:
  items-in:
    direction: inbound
    system: erp
    entities: [item]
    mapping: erp-items
    mode: full
    schedule: "0 2 * * *"
    batch_size: 500
  stock-in:
    direction: inbound
    system: erp
    entities: [inventory_balance]
    mapping: erp-stock
  to-planning:
    direction: outbound
    system: planner
    entities: [item, inventory_balance]
"""


@pytest.fixture(autouse=True)
def fake_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fake`` is a working kind; ``broken`` is registered but cannot be imported."""
    monkeypatch.setitem(registry.KINDS, "fake", "tests.config.fake_connector:FakeConnector")
    monkeypatch.setitem(registry.KINDS, "broken", "tests.config.no_such_module:Nothing")


@pytest.fixture
def write_estate(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "estate.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the n-th line containing ``needle``: tests name lines by content, not by count."""
    lines = [number for number, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line]
    return lines[occurrence - 1]
