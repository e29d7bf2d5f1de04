"""The Tryton variant's estate: estate.yaml with estate-tryton.yaml laid over it is a valid estate in which ERP
Europe is a Tryton, its flows replaced by name, and the rest of the estate as it was."""

from __future__ import annotations

from pathlib import Path

import yaml

from syncfabric.config import validate_estate_file
from syncfabric.sandbox.demo import example_estate
from syncfabric.sandbox.global_tryton import OVERLAY, estate_text


def test_the_overlay_replaces_erp_europe_by_name(tmp_path: Path) -> None:
    base = example_estate("global-manufacturer")
    text = estate_text(base.read_text(), base.with_name(OVERLAY))
    merged, original = yaml.safe_load(text), yaml.safe_load(base.read_text())

    assert merged["systems"]["erp-eu"]["kind"] == "tryton"
    assert merged["systems"]["erp-na"] == original["systems"]["erp-na"]
    assert merged["flows"]["eu-inventory-in"]["mode"] == "full"  # Tryton's stock is read in full
    assert {"eu-item-locations-in", "eu-boms-in", "eu-planned-orders-out"} <= set(merged["flows"])
    assert merged["flows"]["planning-out"] == original["flows"]["planning-out"]
    assert merged["flows"]["eu-planned-orders-out"]["write_back"]["locations"] == ["DE-MUC"]

    estate = tmp_path / "estate.yaml"
    estate.write_text(text)
    (tmp_path / "drop" / "erp-apac").mkdir(parents=True)
    (tmp_path / "drop" / "reference").mkdir(parents=True)
    assert validate_estate_file(estate, environ={}) == []
