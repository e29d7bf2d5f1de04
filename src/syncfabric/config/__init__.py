"""The estate file: its schema, loading with environment overrides, and validation that reports every problem.

    from syncfabric.config import load_estate

    loaded = load_estate("estate.yaml")
    loaded.connection("erp-eu")   # the connector kind's typed configuration
    loaded.secrets("erp-eu")      # credentials, read from the environment at this moment
"""

from __future__ import annotations

from syncfabric.config._json_schema import estate_json_schema
from syncfabric.config.loader import LoadedEstate, load_estate, resolve_store_url, validate_estate_file
from syncfabric.config.schema import Domain, EnvRef, Estate, Flow, Mapping, Sla, System

__all__ = [
    "Domain",
    "EnvRef",
    "Estate",
    "Flow",
    "LoadedEstate",
    "Mapping",
    "Sla",
    "System",
    "estate_json_schema",
    "load_estate",
    "resolve_store_url",
    "validate_estate_file",
]
