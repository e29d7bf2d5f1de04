"""References across the estate: systems, entities, mappings, fields, schedules, connector kinds, credentials."""

from __future__ import annotations

from syncfabric.config import validate_estate_file
from tests.config.conftest import VALID, line_of


def problems_for(write_estate, text: str) -> tuple[str, list[str]]:
    path = write_estate(text)
    return str(path), validate_estate_file(path, environ={})


def test_flow_system_must_exist(write_estate) -> None:
    text = VALID.replace("    system: planner\n    entities", "    system: planer\n    entities")
    path, problems = problems_for(write_estate, text)

    assert problems == [f"{path}:{line_of(text, 'system: planer')}:5: unknown system 'planer' "
                        f"(systems: erp, planner); did you mean 'planner'? @ $.flows.to-planning.system"]


def test_flow_entities_must_exist(write_estate) -> None:
    text = VALID.replace("entities: [item, inventory_balance]", "entities: [item, stock]")
    path, problems = problems_for(write_estate, text)

    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:{line_of(text, '[item, stock]')}:22: unknown entity 'stock' (known: ")
    assert "inventory_balance" in problems[0]
    assert problems[0].endswith("@ $.flows.to-planning.entities[1]")


def test_inbound_flow_moves_one_entity_through_a_mapping(write_estate) -> None:
    text = VALID.replace("    entities: [inventory_balance]\n    mapping: erp-stock\n",
                         "    entities: [inventory_balance, item]\n")
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, 'stock-in:')}:3: an inbound flow needs a mapping (mapping: NAME) @ $.flows.stock-in",
        f"{path}:{line_of(text, '[inventory_balance, item]')}:5: an inbound flow moves exactly one entity, got 2 "
        f"@ $.flows.stock-in.entities",
    ]


def test_mapping_must_exist_and_match_the_flow(write_estate) -> None:
    text = (VALID.replace("    mapping: erp-stock\n", "    mapping: erp-items\n")
            + "    mapping: erp-stok\n")
    path, problems = problems_for(write_estate, text)

    stock_mapping = line_of(text, "mapping: erp-items", 2)
    assert problems == [
        f"{path}:{stock_mapping}:5: mapping 'erp-items' produces entity 'item', but this flow moves "
        f"'inventory_balance' @ $.flows.stock-in.mapping",
        f"{path}:{line_of(text, 'erp-stok')}:5: unknown mapping 'erp-stok' (mappings: erp-items, erp-stock); "
        f"did you mean 'erp-stock'? @ $.flows.to-planning.mapping",
    ]


def test_mapping_system_must_be_the_flows(write_estate) -> None:
    text = VALID.replace("  erp-stock:\n    system: erp\n", "  erp-stock:\n    system: planner\n")
    path, problems = problems_for(write_estate, text)

    assert problems == [f"{path}:{line_of(text, 'mapping: erp-stock')}:5: mapping 'erp-stock' is for system "
                        f"'planner', but this flow's system is 'erp' @ $.flows.stock-in.mapping"]


def test_mapped_fields_must_exist_on_the_entity_and_nested_records(write_estate) -> None:
    text = (VALID.replace("      description: header.text", "      descr: header.text")
            .replace("on_hand: {value: QTY, unit: UOM}", "on_hand: {value: QTY, uom: UOM}")
            .replace("location_id: PLANT", "location_id: {code: PLANT}"))
    path, problems = problems_for(write_estate, text)

    assert len(problems) == 3
    assert problems[0].startswith(f"{path}:{line_of(text, 'descr:')}:7: unknown field 'descr' on entity 'item' "
                                  f"(fields: item_id, description,")
    assert problems[0].endswith("; did you mean 'description'? @ $.mappings.erp-items.fields.descr")
    assert problems[1] == (f"{path}:{line_of(text, 'location_id: {code')}:7: field 'location_id' of entity "
                           f"'inventory_balance' is not a nested record: map it to a source field name, a dotted "
                           f"path or {{const: VALUE}} @ $.mappings.erp-stock.fields.location_id")
    assert problems[2] == (f"{path}:{line_of(text, 'uom: UOM')}:29: unknown field 'uom' on 'on_hand' (Quantity) "
                           f"(fields: value, unit) @ $.mappings.erp-stock.fields.on_hand.uom")


def test_mapping_and_domain_entities_must_exist(write_estate) -> None:
    text = VALID.replace("    entity: item\n    sync_model", "    entity: items\n    sync_model").replace(
        "    entity: inventory_balance\n", "    entity: inventory\n")
    path, problems = problems_for(write_estate, text)

    assert [problem.rpartition(" @ ")[2] for problem in problems] == [
        "$.domains.items.entity", "$.mappings.erp-stock.entity", "$.flows.stock-in.mapping"]
    assert problems[0].startswith(f"{path}:{line_of(text, 'entity: items')}:5: unknown entity 'items'")
    assert "did you mean 'item'?" in problems[0]


def test_schedules_must_be_cron_expressions(write_estate) -> None:
    text = VALID.replace('"*/5 * * * *"', '"*/5 * * *"').replace('"0 2 * * *"', '"0 25 * * *"')
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, '*/5')}:5: invalid cron expression '*/5 * * *': Exactly 5, 6 or 7 columns has to "
        f"be specified for iterator expression. @ $.domains.items.schedule",
        f"{path}:{line_of(text, '0 25')}:5: invalid cron expression '0 25 * * *': is not acceptable, out of range "
        f"@ $.flows.items-in.schedule",
    ]


def test_system_kind_must_be_registered(write_estate) -> None:
    text = VALID.replace("  planner:\n    kind: fake", "  planner:\n    kind: fakes")
    path, problems = problems_for(write_estate, text)

    (problem,) = problems
    assert problem.startswith(f"{path}:{line_of(text, 'kind: fakes')}:5: unknown system kind 'fakes' (known: ")
    assert problem.endswith("; did you mean 'fake'? @ $.systems.planner.kind")


def test_a_kind_that_cannot_be_imported_is_reported(write_estate) -> None:
    text = VALID.replace("  planner:\n    kind: fake", "  planner:\n    kind: broken")
    path, problems = problems_for(write_estate, text)

    (problem,) = problems
    assert problem.startswith(f"{path}:{line_of(text, 'kind: broken')}:5: connector kind 'broken' cannot be loaded")


def test_connection_must_decode_into_the_kinds_configuration(write_estate) -> None:
    text = (VALID.replace("port: 8443", "port: 8443\n      verify_tls: true\n      proxy: none")
            .replace("connection: {url: https://plan.example.test}", "connection: {}"))
    path, problems = problems_for(write_estate, text)

    assert problems == [
        f"{path}:{line_of(text, 'proxy: none')}:7: unknown field 'proxy' (expected one of: port, url, verify_tls) "
        f"@ $.systems.erp.connection.proxy",
        f"{path}:{line_of(text, 'connection: {}')}:5: missing required field 'url' @ $.systems.planner.connection",
    ]
    text = VALID.replace("port: 8443", "port: many")
    path, problems = problems_for(write_estate, text)
    assert problems == [f"{path}:{line_of(text, 'port: many')}:7: expected `int`, got `str` "
                        f"@ $.systems.erp.connection.port"]


def test_credentials_must_be_the_kinds_secrets(write_estate) -> None:
    text = VALID.replace("token: {env: ERP_TOKEN}", "tokn: {env: ERP_TOKEN}")
    path, problems = problems_for(write_estate, text)

    assert problems == [f"{path}:{line_of(text, 'tokn')}:7: unknown credential 'tokn' for kind 'fake' "
                        f"(expected one of: token, password); did you mean 'token'? @ $.systems.erp.credentials.tokn"]


def test_store_must_be_a_url(write_estate) -> None:
    text = VALID.replace("store: sqlite:///data/sf.db", "store: data/sf.db")
    path, problems = problems_for(write_estate, text)

    assert problems == [f"{path}:3:1: expected a store URL such as sqlite:///path/to.db or postgresql://host/db "
                        f"@ $.store"]


def test_a_close_entity_name_is_suggested_instead_of_the_whole_list(write_estate) -> None:
    text = VALID.replace("entities: [item]", "entities: [items]")
    path, problems = problems_for(write_estate, text)

    assert f"{path}:{line_of(text, '[items]')}:16: unknown entity 'items'; did you mean 'item'? " \
           f"@ $.flows.items-in.entities[0]" in problems
