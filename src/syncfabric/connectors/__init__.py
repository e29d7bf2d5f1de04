"""Connectors: one package per system kind, registered explicitly in :mod:`syncfabric.connectors.registry`."""
