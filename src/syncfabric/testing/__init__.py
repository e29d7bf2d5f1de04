"""Test kits that implementations of syncfabric's interfaces reuse: :mod:`.connector_kit` for connectors.

Nothing in ``syncfabric`` imports this package, so pytest is needed only by the tests that use it.
"""
