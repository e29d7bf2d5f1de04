"""A simulated estate for the demo and the tests: ERPs, plant systems, the planning platform, fault injection.

Each simulated system is an ASGI app served on a real loopback port by :func:`syncfabric.sandbox.server.serve`.
"""
